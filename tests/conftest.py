import os
import tempfile

# a private kernel cache per test session keeps runs independent of ~/.cache
os.environ.setdefault("FUSEGRAD_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"fusegrad-test-cache-{os.getuid()}"))

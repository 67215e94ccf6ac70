import os
import tempfile
import zlib

import numpy as np
import pytest

# a private kernel cache per test session keeps runs independent of ~/.cache
os.environ.setdefault("FUSEGRAD_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"fusegrad-test-cache-{os.getuid()}"))

# every test draws from streams seeded by its own name (and FUSEGRAD_TEST_SEED, default 0), so a
# failure reproduces by running the test again; the seed is printed with the failure
BASE_SEED = int(os.environ.get("FUSEGRAD_TEST_SEED", "0"))


def _test_seed(nodeid: str) -> int:
    return (zlib.crc32(nodeid.encode()) + BASE_SEED) % 2**32


@pytest.fixture(autouse=True)
def _seeded(request: pytest.FixtureRequest) -> None:
    import fusegrad as fg
    from tests import helpers
    seed = _test_seed(request.node.nodeid)
    helpers.RNG.bit_generator.state = np.random.default_rng(seed).bit_generator.state
    np.random.seed(seed)
    fg.manual_seed(seed)
    try:
        import torch
        torch.manual_seed(seed)
    except ImportError:
        pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        report.sections.append(("random seed", f"test seed {_test_seed(item.nodeid)} "
                                               f"(FUSEGRAD_TEST_SEED={BASE_SEED}; the same command reproduces it)"))

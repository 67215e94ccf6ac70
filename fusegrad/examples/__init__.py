"""Runnable programs: `python -m fusegrad.examples.<name>`."""

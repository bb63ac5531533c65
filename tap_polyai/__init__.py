"""tap-polyai: a Singer tap for PolyAI conversations."""

from tap_polyai import deferred_imports

deferred_imports.install()  # before anything imports singer_sdk: start-up time

# The installed distribution's version (pyproject.toml's; tests/test_startup.py checks they agree):
# a constant, not `importlib.metadata.version()`, which costs a run ~20 ms of imports and a scan
# of the installed distributions before the first request.
__version__ = "0.2.0"

"""tap-polyai: a Singer tap for PolyAI conversations."""

from importlib.metadata import PackageNotFoundError, version

from tap_polyai import deferred_imports

deferred_imports.install()  # before anything imports singer_sdk: start-up time

try:
    __version__ = version("tap-polyai")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

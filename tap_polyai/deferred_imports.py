"""Defer the imports singer-sdk makes for features a tap run never uses.

`import singer_sdk` loads machinery this tap never runs: joblib (targets drain sinks in
parallel), universal-pathlib with fsspec (BATCH files) and backoff with asyncio (RESTStream's
retries; this tap has its own client). Together about a quarter of a small incremental run's
wall time (benchmarks/RESULTS.md, start-up), all before the first request. singer-sdk 0.54
binds `joblib.Parallel`, `joblib.delayed`, `joblib.parallel_config` and `upath.UPath` by name
at import and only ever calls them, so each is bound to a stand-in that imports the real
module on its first call and forwards the call; `backoff` is only read inside RESTStream's
methods. Touching anything else of such a module imports the real one at once (but not its
submodules: `import joblib.x` fails until `joblib` itself was used). A module already
imported is left alone.
"""

from __future__ import annotations

import importlib
import sys
import types
import typing as t

# module -> the names singer-sdk imports from it and only calls
DEFERRED: dict[str, tuple[str, ...]] = {
    "joblib": ("Parallel", "delayed", "parallel_config"),
    "upath": ("UPath",),
    "backoff": (),  # RESTStream retries (this tap has its own client); pulls in asyncio
}


def _real(module: str) -> types.ModuleType:
    if isinstance(sys.modules.get(module), _DeferredModule):
        del sys.modules[module]
    return importlib.import_module(module)


class _DeferredCall:
    """Stands for `module.name`, a callable: the module is imported on the first call."""

    def __init__(self, module: str, name: str) -> None:
        self._module = module
        self._name = name

    def __call__(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        return getattr(_real(self._module), self._name)(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<deferred {self._module}.{self._name}>"


class _DeferredModule(types.ModuleType):
    def __init__(self, name: str, callables: tuple[str, ...]) -> None:
        super().__init__(name)
        self._callables = callables

    def __getattr__(self, attr: str) -> t.Any:
        if attr.startswith("__"):
            # `from m import name` first asks for `__path__`: a module, not a package, here.
            raise AttributeError(attr)
        if attr in self._callables:
            return _DeferredCall(self.__name__, attr)
        return getattr(_real(self.__name__), attr)


def install() -> None:
    """Put the stand-ins in place of modules not imported yet (idempotent)."""
    for module, names in DEFERRED.items():
        if module not in sys.modules:
            sys.modules[module] = _DeferredModule(module, names)

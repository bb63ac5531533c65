"""Defer the imports singer-sdk makes for features a tap run never uses.

`import singer_sdk` loads machinery this tap never runs: joblib (targets drain sinks in
parallel), universal-pathlib with fsspec (BATCH files), backoff with asyncio (RESTStream's
retries; this tap has its own client), jsonpath-ng (RESTStream's record paths and paginators),
python-dotenv (`--config ENV`), packaging (the supported Python versions of `--about`),
`logging.config` (only with `SINGER_SDK_LOG_CONFIG`) and both importlib.metadata and its
backport (package versions and plugin entry points: the tap names its versions without them,
tap.py). All of it before the first request (benchmarks/RESULTS.md, start-up).

singer-sdk 0.54 binds the names listed in `DEFERRED` by name at import and only ever calls
them (or checks `isinstance` against them), so each is bound to a stand-in that imports the
real module on its first use and forwards to it. Touching anything else of such a module
imports the real one at once (but not its submodules: `import joblib.x` fails until `joblib`
itself was used). A module already imported is left alone; so is one whose parent package
would have to be imported first (only cheap parents are: `_PARENTS`).
"""

from __future__ import annotations

import importlib
import sys
import types
import typing as t

# module -> the names singer-sdk imports from it and only calls (or isinstance-checks);
# a package's submodules come after it
DEFERRED: dict[str, tuple[str, ...]] = {
    "joblib": ("Parallel", "delayed", "parallel_config"),
    "upath": ("UPath",),
    "backoff": (),  # RESTStream retries (this tap has its own client); pulls in asyncio
    "jsonpath_ng": ("Child", "Slice"),  # helpers.jsonpath: RESTStream's records_jsonpath
    "jsonpath_ng.ext": ("parse",),
    "dotenv": ("find_dotenv",),  # configuration._dict_config: `--config ENV`
    "dotenv.main": ("DotEnv",),
    "packaging.specifiers": ("SpecifierSet",),  # about: `--about`'s Python versions
    "packaging.version": ("Version",),
    "logging.config": (),  # _logging: only read with SINGER_SDK_LOG_CONFIG
    # plugin_base, helpers._packaging, urllib3.http2: package versions (tap.py names its own)
    "importlib.metadata": ("version",),
    "importlib_metadata": ("entry_points",),  # helpers._compat: BATCH encoder plugins
}
# parents imported (cheap) so that a deferred submodule is also their attribute
_PARENTS = ("packaging", "logging", "importlib")


def _real(module: str) -> types.ModuleType:
    """The real module: every stand-in of its top-level package is dropped, then it is imported."""
    top = module.partition(".")[0]
    for name in [n for n in sys.modules if n == top or n.startswith(f"{top}.")]:
        if isinstance(sys.modules.get(name), _DeferredModule):
            del sys.modules[name]
    return importlib.import_module(module)


class _DeferredCall:
    """Stands for `module.name`, a callable (or a class): the module is imported on first use."""

    def __init__(self, module: str, name: str) -> None:
        self._module = module
        self._name = name

    def _target(self) -> t.Any:
        return getattr(_real(self._module), self._name)

    def __call__(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        return self._target()(*args, **kwargs)

    def __instancecheck__(self, instance: t.Any) -> bool:
        return isinstance(instance, self._target())

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
        if module in sys.modules:
            continue
        parent, _, child = module.rpartition(".")
        if parent and parent not in sys.modules:
            if parent not in _PARENTS:
                continue
            importlib.import_module(parent)
        stand_in = _DeferredModule(module, names)
        sys.modules[module] = stand_in
        if parent:
            setattr(sys.modules[parent], child, stand_in)

"""Heavy modules (torch, numba and the index's compiled kernels) loaded on first use.

`lfm2-search --help`, a lexical search and `info` never multiply a tensor, yet importing torch
costs a second and numba a quarter of one on two cores: a module that needs them for its
semantic path names them through `lazy_module`, and they load the first time one of their
attributes is read.

Why not `importlib.util.LazyLoader`: it puts a module that is not yet executed into
`sys.modules` and runs it inside whichever attribute read comes first, so a torch started that
way breaks on its own circular imports. The proxy below only forwards: the real module is
imported the ordinary way, once, when something first needs it.
"""

from __future__ import annotations

import importlib
import types
from typing import Any


class _Deferred(types.ModuleType):
    """Stands for a module until an attribute is read, then forwards every read to it."""

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self.__name__), attribute)

    def __repr__(self) -> str:
        return f"<module {self.__name__!r}, loaded on first use>"


def lazy_module(name: str) -> Any:
    """A stand-in for `import name` that imports it only when first used."""
    return _Deferred(name)

"""Lazy package exports: public names imported on first use, so ``import`` stays cheap.

The package root and ``autotalk_prefect.flows`` expose names from modules that pull in httpx,
Prefect or dlt; importing those only when a name is used keeps ``autotalk-prefect --help`` and
``import autotalk_prefect`` fast. A module whose every public name a package exports (the root:
``api/errors.py``, the exception tree) is named once, and its ``__all__`` is the list, read
when one of its names (or the package's ``__all__``) is first asked for.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str,
    exports: Mapping[str, str],
    *,
    every_name_of: Sequence[str] = (),
    own: Sequence[str] = (),
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps a name to its module.

    Every name in the ``__all__`` of each module of ``every_name_of`` is exported too, and the
    package's ``__all__`` (answered here, so leave it undefined) is all of them plus ``own``,
    the public names the package defines itself.
    """

    def _everything() -> dict[str, str]:
        names = dict(exports)
        for module in every_name_of:
            names.update(dict.fromkeys(import_module(module).__all__, module))
        return names

    def __getattr__(name: str) -> Any:
        if name == "__all__":
            value: Any = sorted({*_everything(), *own})
        else:
            module = exports.get(name)
            if module is None and every_name_of and not name.startswith("_"):
                module = _everything().get(name)
            if module is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            value = getattr(import_module(module), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this hook
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(_everything()))

    return __getattr__, __dir__

"""What every model registry shares: kebab-case names → modules to import → a registered ``load``."""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from im2sp_models.errors import UnknownModelError

T = TypeVar("T")


class Registry:
    """Entries are imported on first use (heavy libraries load only when their model is asked for).

    Args:
        kind: What the entries are, for error messages (``image tokenizer``).
        modules: Name → module whose import registers that name's class with :meth:`register`.
    """

    def __init__(self, kind: str, modules: dict[str, str]) -> None:
        self.kind = kind
        self.modules = dict(modules)
        self._loaders: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: register the class's ``load`` classmethod under ``name``."""

        def decorate(cls: T) -> T:
            self._loaders[name] = cls.load  # type: ignore[attr-defined]
            return cls

        return decorate

    def names(self) -> list[str]:
        """Every name, sorted."""
        return sorted(self.modules)

    def load(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Import the entry's module and call its ``load``.

        Raises:
            UnknownModelError: No entry has that name.
        """
        if name not in self.modules:
            raise UnknownModelError(f"unknown {self.kind} {name!r}; choose one of {self.names()}")
        importlib.import_module(self.modules[name])
        return self._loaders[name](*args, **kwargs)


def folder_checksum(folder: Path, suffixes: tuple[str, ...] | None = None) -> str:
    """sha256 over the names and bytes of a folder's files (sorted; only ``suffixes`` when given): weights' identity."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file() and (suffixes is None or path.suffix in suffixes):
            digest.update(path.name.encode())
            with path.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()

"""One registry for every model kind: kebab-case names → entry classes, each with its typed settings.

An entry is a small class that carries its ``name`` (saved in every store it produces), a ``Settings`` model
(pydantic, frozen, unknown keys refused: the entry's options in one place), what it needs and can do
(``needs_checkpoint``, and per kind more, e.g. ``learns_codebook``), and a ``load`` classmethod:
``load(checkpoint, settings, *, device)``. Built-in entries are imported on first use (heavy libraries load
only when their model is asked for); entries from other packages are found through the kind's entry-point
group (``im2sp.image_tokenizers``, …), whose names are the registry names and whose values are the classes.
A plugin may not take a built-in's name (stores would no longer say which model made them).
"""

from __future__ import annotations

import hashlib
import importlib
import re
import sys
import warnings
from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, Literal, Protocol, Self, TypeVar, Union, cast

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, ValidationError, create_model

from storage.errors import ConfigError, UnknownModelError


class ModelSettings(BaseModel):
    """Base of every entry's options: frozen (hashable, safe to share) and strict about unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def validated_settings(
    model: type[ModelSettings], given: ModelSettings | Mapping[str, Any] | None, label: str
) -> ModelSettings:
    """``model`` from a settings object, a mapping of options, or None (the defaults).

    Raises:
        ConfigError: An option ``model`` does not take, or a value it refuses, named after ``label``.
    """
    if isinstance(given, model):
        return given
    document = given.model_dump() if isinstance(given, BaseModel) else dict(given or {})
    try:
        return model.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or label}: {e['msg']}" for e in error.errors())
        raise ConfigError(f"{label}: {problems} (its options: {option_names(model)})") from None


class NoSettings(ModelSettings):
    """The settings of an entry that takes no options."""


class ModelEntry(Protocol):
    """What every registry entry offers on its class."""

    #: Kebab-case registry name, saved in every store's metadata.
    name: ClassVar[str]
    #: The entry's options (a :class:`ModelSettings` subclass).
    Settings: ClassVar[type[ModelSettings]]
    #: Whether ``load`` needs a local checkpoint (file or folder); weight-free entries take None.
    needs_checkpoint: ClassVar[bool]

    @classmethod
    def load(cls, checkpoint: Path | None, settings: Any = None, /, *, device: str = "auto") -> Self:
        """Load the model from its checkpoint (None for weight-free ones) and settings (None: the defaults)."""


E = TypeVar("E", bound=ModelEntry)
C = TypeVar("C")

#: Class attributes every entry must have (a kind's registry may ask for more).
REQUIRED = ("name", "Settings", "needs_checkpoint", "load")


class Registry(Generic[E]):
    """The entries of one model kind.

    Args:
        kind: What the entries are, for messages (``image tokenizer``).
        group: The entry-point group other packages register under (``im2sp.image_tokenizers``).
        builtins: Built-in name → module whose import registers that entry (with :meth:`register`).
        required: Class attributes this kind's entries need besides :data:`REQUIRED`.
    """

    def __init__(self, kind: str, group: str, builtins: Mapping[str, str], required: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.group = group
        self.builtins = dict(builtins)
        self.required = REQUIRED + required
        self._entries: dict[str, type[E]] = {}
        self._scanned: tuple[tuple[str, ...], dict[str, EntryPoint]] | None = None

    def register(self, cls: C) -> C:
        """Class decorator: register an entry under its ``name``.

        Raises:
            UnknownModelError: The class lacks an entry's attributes, or takes a name already taken.
        """
        entry = cast(type[E], cls)
        missing = [attribute for attribute in self.required if not hasattr(entry, attribute)]
        if missing or not (isinstance(entry.Settings, type) and issubclass(entry.Settings, ModelSettings)):
            raise UnknownModelError(
                f"{getattr(cls, '__qualname__', cls)} is not a {self.kind}: it needs {', '.join(self.required)} "
                f"(missing {', '.join(missing) or 'Settings as a ModelSettings subclass'})"
            )
        known = self._entries.get(entry.name)
        if entry.name in self.builtins and entry.__module__ != self.builtins[entry.name]:
            raise UnknownModelError(f"{entry.__module__}: {entry.name!r} is a built-in {self.kind}'s name")
        if known is not None and known is not entry:
            raise UnknownModelError(f"two {self.kind}s named {entry.name!r}: {known.__module__}, {entry.__module__}")
        self._entries[entry.name] = entry
        return cls

    def _plugins(self) -> dict[str, EntryPoint]:
        # Scanning every installed distribution costs ~0.1 s: once per sys.path (a changed path rescans).
        if self._scanned is None or self._scanned[0] != tuple(sys.path):
            found = {point.name: point for point in entry_points(group=self.group) if point.name not in self.builtins}
            self._scanned = (tuple(sys.path), found)
        return self._scanned[1]

    def names(self) -> list[str]:
        """Every name, built-in or from an installed plugin, sorted (nothing is imported)."""
        return sorted({*self.builtins, *self._entries, *self._plugins()})

    def entry(self, name: str) -> type[E]:
        """The entry class of a name (its module imported now).

        Raises:
            UnknownModelError: No entry has that name, or its plugin does not load.
        """
        if name in self._entries:
            return self._entries[name]
        if name in self.builtins:
            importlib.import_module(self.builtins[name])
        elif (point := self._plugins().get(name)) is not None:
            self._adopt(point)
        if name not in self._entries:
            raise UnknownModelError(
                f"unknown {self.kind} {name!r}; choose one of {self.names()} (or install a package that "
                f"registers it under the {self.group!r} entry points)"
            )
        return self._entries[name]

    def _adopt(self, point: EntryPoint) -> None:
        try:
            loaded = point.load()
        except Exception as error:  # a plugin's import may fail in any way; say which one and why
            raise UnknownModelError(
                f"{self.kind} plugin {point.name!r} ({point.value}) fails to load: {error}"
            ) from error
        if getattr(loaded, "name", None) != point.name:
            raise UnknownModelError(
                f"{self.kind} plugin {point.name!r} ({point.value}) names itself {getattr(loaded, 'name', None)!r}"
            )
        self.register(loaded)

    def entries(self) -> dict[str, type[E]]:
        """Every entry class, imported, by name (a plugin that fails to load is left out with a warning)."""
        found: dict[str, type[E]] = {}
        for name in self.names():
            try:
                found[name] = self.entry(name)
            except UnknownModelError as error:
                if name in self.builtins:
                    raise
                warnings.warn(str(error), RuntimeWarning, stacklevel=2)
        return found

    def settings(self, name: str, given: ModelSettings | Mapping[str, Any] | None = None) -> ModelSettings:
        """The entry's settings from a settings object, a mapping of options, or None (the defaults).

        Raises:
            UnknownModelError: No entry has that name.
            ConfigError: An option the entry does not take, or a value it refuses (named in the message).
        """
        return validated_settings(self.entry(name).Settings, given, f"{self.kind} {name}")

    def load(
        self,
        name: str,
        checkpoint: Path | None,
        *,
        device: str = "auto",
        settings: ModelSettings | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> E:
        """Load an entry, ``settings`` (or keyword ``options``) validated into its ``Settings`` first.

        Raises:
            UnknownModelError: No entry has that name.
            ConfigError: Options the entry does not take or refuses.
            CheckpointError: The checkpoint cannot be loaded.
        """
        if settings is not None and options:
            raise ConfigError(f"{self.kind} {name}: give settings or keyword options, not both")
        typed = self.settings(name, settings if settings is not None else options)
        return self.entry(name).load(checkpoint, typed, device=device)

    def choice(self, base: type[BaseModel], key: str, default: str) -> Any:
        """A pydantic type for a config section: ``base``'s fields plus one entry's ``Settings``, chosen by ``key``.

        One model per entry, ``key`` fixed to its name (a discriminated union); ``key`` left out means
        ``default``. A field both in ``base`` and in an entry's settings (hubert's ``batch_size``) is one key,
        given to the entry. Each model is also set on ``base``'s module, so sections pickle by reference.

        Args:
            base: The section's own fields (pipeline knobs that are not model options).
            key: The field naming the entry (``name``, ``features``).
            default: The entry when ``key`` is left out.
        """
        module = sys.modules[base.__module__]
        members: list[Any] = []
        for name, entry in self.entries().items():
            title = f"{base.__name__}_{re.sub(r'[^0-9A-Za-z]', '_', name)}"
            fields: dict[str, Any] = {key: (Literal[name], name)}
            member = create_model(title, __base__=(base, entry.Settings), __module__=base.__module__, **fields)
            setattr(module, title, member)
            members.append(Annotated[member, Tag(name)])
        return Annotated[
            Union[tuple(members)],  # noqa: UP007 - the members are only known at run time
            Discriminator(
                lambda value: value.get(key, default) if isinstance(value, dict) else getattr(value, key, default),
                custom_error_type="unknown_model",
                custom_error_message=f"unknown {self.kind} {key}; choose one of {', '.join(self.names())} (or install "
                f"a package that registers it under the {self.group!r} entry points)",
            ),
        ]


def option_names(model: type[BaseModel]) -> str:
    """The options a settings model takes, for messages (``none`` when it takes none)."""
    return ", ".join(model.model_fields) or "none"


def float32_only(entry: str) -> Callable[[str], str]:
    """A ``precision`` check for entries that compute in numpy float32: ``fp32`` passes, anything else is refused."""

    def check(precision: str) -> str:
        if precision != "fp32":
            raise ValueError(f"{entry} runs in numpy float32: precision {precision!r} applies to torch models only")
        return precision

    return check


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

"""The dataset kinds: one registered :class:`DatasetSource` per kind, and the config union of their specs.

Adding a dataset kind is one module (its spec, listing function and ``SOURCE``) plus its name here, in
:data:`BUILT_IN` and in the :data:`DatasetSpec` union. Code asks :func:`source_of` (``list_source``, the rejection
limit, the storage report), never ``isinstance``. Kinds from outside the package register with
:func:`register_source`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from storage.errors import ConfigError
from storage.sources import coco, flickr8k
from storage.sources.coco import CocoSpec
from storage.sources.flickr8k import Flickr8kSpec
from storage.sources.source import DatasetSource, S, SourceSpec

#: The dataset kinds im2sp ships, one line each.
BUILT_IN: tuple[DatasetSource[Any], ...] = (coco.SOURCE, flickr8k.SOURCE)

#: The ``datasets.<name>`` section of the config: one of the built-in specs, chosen by ``kind``. Spelled out
#: (not built from :data:`BUILT_IN`) so mypy sees each spec's fields; tests/test_dataset_kinds.py checks the two agree.
DatasetSpec = Annotated[CocoSpec | Flickr8kSpec, Field(discriminator="kind")]

_BY_SPEC: dict[type[SourceSpec], DatasetSource[Any]] = {source.spec: source for source in BUILT_IN}


def register_source(source: DatasetSource[Any]) -> None:
    """Register a dataset kind (registering the same spec again replaces its entry).

    Raises:
        ConfigError: If another spec already uses the kind's name.
    """
    taken = [known for known in _BY_SPEC.values() if known.kind == source.kind and known.spec is not source.spec]
    if taken:
        raise ConfigError(f"dataset kind {source.kind!r} is already registered by {taken[0].spec.__name__}")
    _BY_SPEC[source.spec] = source


def registered() -> tuple[DatasetSource[Any], ...]:
    """Every registered dataset kind, built-in ones first."""
    return tuple(_BY_SPEC.values())


def source_of(spec: S) -> DatasetSource[S]:
    """The registered kind a spec belongs to.

    Raises:
        ConfigError: If the spec's class was never registered.
    """
    try:
        return _BY_SPEC[type(spec)]
    except KeyError:
        known = ", ".join(source.kind for source in _BY_SPEC.values())
        raise ConfigError(
            f"{type(spec).__name__} is not a registered dataset kind (known: {known}); register it with "
            "storage.sources.registry.register_source"
        ) from None

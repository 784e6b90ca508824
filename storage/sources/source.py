"""What a dataset kind is: the config section it reads (a :class:`SourceSpec`) and the :class:`DatasetSource` entry.

A dataset kind is one module holding its spec (a pydantic model with a ``kind`` literal), its listing function
and a ``SOURCE`` entry; ``storage/sources/registry.py`` registers it. Manifests, the rejection limit and the
storage report ask the entry, never ``isinstance``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from storage.sources.records import SourceListing


class SourceSpec(BaseModel):
    """The fields every dataset kind's config section has; each kind adds ``kind: Literal[...]`` and its paths."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: Path = Field(description="Dataset root folder; every other path is relative to it.")
    max_rejected_fraction: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="build-manifests fails (and publishes nothing) when a table rejects more than this "
        "fraction of its items: a wrong folder, not a damaged dataset.",
    )


S = TypeVar("S", bound=SourceSpec)


@dataclass(frozen=True)
class DatasetSource(Generic[S]):
    """One dataset kind: its spec class and what code asks of it.

    Attributes:
        spec: The config section's model; its ``kind`` literal names the kind in the config.
        listing: Lists a dataset's images, captions and utterances (``(dataset name, spec) -> listing``).
        media_roots: Display path per modality (``image``, ``speech``) for the storage report's ``source`` entries.
        config_keys: Per manifest table (``images``, ``captions``, ``utterances``), the key under
            ``datasets.<name>`` that most often explains its rejections (named by the rejection limit).
    """

    spec: type[S]
    listing: Callable[[str, S], SourceListing]
    media_roots: Callable[[S], dict[str, str]]
    config_keys: Mapping[str, str]

    @property
    def kind(self) -> str:
        """The kind's name in the config (the default of its spec's ``kind`` field)."""
        return str(self.spec.model_fields["kind"].default)

"""Where a dataset lives on disk: the config section of each dataset kind (``datasets.<name>``).

Each kind's spec lives in its own module (``coco.py``, ``flickr8k.py``) beside its listing function, and the
union the config validates against beside the registry (``registry.py``); they are named here too, for the
config and for code that imports them from this module.
"""

from __future__ import annotations

from storage.sources.coco import CocoSpec
from storage.sources.flickr8k import Flickr8kSpec
from storage.sources.registry import DatasetSpec
from storage.sources.source import SourceSpec

__all__ = ["CocoSpec", "DatasetSpec", "Flickr8kSpec", "SourceSpec"]

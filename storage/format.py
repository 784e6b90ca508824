"""On-disk format constants shared by every writer and reader (see docs/FORMAT.md)."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version

from storage.errors import UnsupportedFormatError

#: Version of the on-disk layout described in docs/FORMAT.md. Bump it with every incompatible change.
#: 2: packed key lists in markers. 3: speech planned by image (manifests layout 2, ``storage/manifests.py``).
FORMAT_VERSION = 3
#: Versions this code can read (a store of an older one is read as it is, and not rebuilt for the upgrade).
KNOWN_FORMAT_VERSIONS = frozenset({1, 2, 3})


@cache
def code_version() -> str:
    """Return the installed im2sp version, recorded in every commit marker."""
    try:
        return version("im2sp")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def check_format_version(found: object, where: str) -> None:
    """Refuse data written in a format this code does not know.

    Args:
        found: The ``format_version`` value read from disk.
        where: The file it was read from, for the message.

    Raises:
        UnsupportedFormatError: If the version is not one this code can read.
    """
    if found not in KNOWN_FORMAT_VERSIONS:
        known = ", ".join(str(v) for v in sorted(KNOWN_FORMAT_VERSIONS))
        raise UnsupportedFormatError(
            f"{where}: format_version {found!r} is not one this im2sp ({code_version()}) can read "
            f"(known: {known}); upgrade im2sp or rebuild the store"
        )

"""Test session set-up: offline, quiet, a private Prefect home, shared fixtures."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Before anything imports prefect or transformers.
_HOME = tempfile.mkdtemp(prefix="im2sp-test-prefect-")
os.environ["PREFECT_HOME"] = _HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_VERBOSITY"] = "error"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

import pytest  # noqa: E402

from storage.store import Store  # noqa: E402


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """An empty local store."""
    return Store(str(tmp_path / "store"))


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample data, written once per test session by the real generator."""
    from storage.sample.build import write_sample_data

    directory = tmp_path_factory.mktemp("sample")
    write_sample_data(directory)
    return directory


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect server for the tests that exercise the engine."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield

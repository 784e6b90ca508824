"""A trainer's own random streams, and the file that makes its checkpoint folder complete.

The vocoder trainers (``unit-mel``, ``unit-hifigan``) keep a torch stream (dropout; CUDA's too on a GPU) and a
numpy stream (crops) apart from the process's, so that a run resumed from a checkpoint is the uninterrupted one
bit for bit on the CPU, whatever else the process draws. ``trainer.json`` is written last and atomically: a
folder without it is an incomplete checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

TRAINER_FILE, RNG_FILE = "trainer.json", "rng.safetensors"


class RandomStreams:
    """The torch (and CUDA) generator states and the numpy crop stream of one trainer on ``device``."""

    def __init__(self, device: str, seed: int) -> None:
        self.device = device
        self.torch: Any = None
        self.cuda: Any = None
        self.crops = np.random.default_rng([seed, 1])

    def devices(self) -> list[int]:
        """The CUDA device ``fork_rng`` must keep apart (none on the CPU)."""
        import torch

        if not self.device.startswith("cuda"):
            return []
        index = torch.device(self.device).index
        return [torch.cuda.current_device() if index is None else index]

    @contextmanager
    def seeded(self, seed: int) -> Iterator[None]:
        """Run the block (building networks) on a fresh stream seeded by ``seed``; keep where it ends."""
        import torch

        with torch.random.fork_rng(devices=self.devices()):
            torch.manual_seed(seed)
            yield
            self._keep()

    @contextmanager
    def own(self) -> Iterator[None]:
        """Run the block (a training step) on the trainer's streams, the process's left as they were."""
        import torch

        with torch.random.fork_rng(devices=self.devices()):
            torch.set_rng_state(self.torch)
            if self.cuda is not None:
                torch.cuda.set_rng_state(self.cuda, self.device)
            yield
            self._keep()

    def _keep(self) -> None:
        import torch

        self.torch = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(self.device) if self.devices() else None

    def save(self, folder: Path) -> None:
        """``rng.safetensors``: the torch and CUDA states (the crop stream goes in ``trainer.json``)."""
        from safetensors.torch import save_file

        states = {"torch": self.torch} | ({} if self.cuda is None else {"cuda": self.cuda})
        save_file({key: value.detach().cpu().contiguous() for key, value in states.items()}, str(folder / RNG_FILE))

    def load(self, folder: Path, crops: dict[str, Any]) -> None:
        """Restore what :meth:`save` wrote and the crop stream's ``bit_generator.state``.

        Raises:
            OSError, SafetensorError, KeyError: The file is missing or not a saved state.
        """
        from safetensors.torch import load_file

        states = load_file(str(folder / RNG_FILE))
        self.torch = states["torch"]
        if self.cuda is not None and "cuda" in states:
            self.cuda = states["cuda"]
        self.crops.bit_generator.state = crops


class Checkpointed(Protocol):
    """What ``trainer.json`` records of a trainer."""

    streams: RandomStreams
    clusters: int
    step: int

    @property
    def settings(self) -> Any:
        """Its pydantic settings."""


def write_trainer_document(folder: Path, trainer: Checkpointed, *, name: str, format_version: int) -> None:
    """Save the trainer's streams, then write ``trainer.json`` atomically (the last file of a checkpoint)."""
    trainer.streams.save(folder)
    document = {
        "name": name,
        "format_version": format_version,
        "clusters": trainer.clusters,
        "step": trainer.step,
        "settings": trainer.settings.model_dump(mode="json"),
        "crops": trainer.streams.crops.bit_generator.state,
    }
    partial = folder / f"{TRAINER_FILE}.partial"
    partial.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    partial.replace(folder / TRAINER_FILE)

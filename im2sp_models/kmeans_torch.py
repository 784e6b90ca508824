"""Seeded Lloyd k-means in torch: the GPU path when faiss has no GPU code; it runs on CPU tensors as well.

The same code runs on any torch device, so the CPU tests exercise what the GPU runs. Distances are faiss
``IndexFlatL2``'s, ``(||x||² + ||c||²) - 2 x·c`` in float32, clamped at 0, the first minimum winning; labels
match faiss's on the same centroids except where two centroids are within float32 rounding of each other (the
GEMMs sum in different orders). TF32 is off while it runs: its 10-bit mantissa would move labels.

Centroid sums are a one-hot GEMM per chunk, added up in float64: an atomic ``index_add_`` on a GPU adds in
a varying order, so its bytes would change from run to run. An empty cluster takes half of the largest one
(faiss's rule, but the largest rather than a size-weighted random pick, so no draw is needed): it copies that
centroid, and the two are pushed apart by ±1/1024 of each coordinate.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

#: Relative push that separates a split centroid from the one it copies (faiss uses the same).
SPLIT_EPS = 1.0 / 1024


@contextmanager
def exact_float32() -> Iterator[None]:
    """Switch TF32 matmuls off for the block (it is off by default; a caller may have turned it on)."""
    import torch

    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


class TorchKMeans:
    """Lloyd iterations and nearest-centroid search on one torch device, chunked to bound memory.

    The frames of the last call stay on the device (with their squared norms): train_kmeans calls several
    times in a row with the same array, and copying 2,000,000 × 768 frames again each time would cost more
    than the iterations. Arrays must not be changed in place between calls.

    Args:
        device: A torch device name (``cuda``, ``cuda:1``, ``cpu``).
        chunk_rows: Frames per distance block: the block's ``(chunk_rows, K)`` distances and one-hot
            ``(K, chunk_rows)`` matrix are what it allocates besides the frames.
    """

    def __init__(self, device: str, *, chunk_rows: int = 1 << 16) -> None:
        self.device = device
        self.chunk_rows = chunk_rows
        self._held: tuple[np.ndarray, torch.Tensor, torch.Tensor] | None = None

    def lloyd(self, frames: np.ndarray, init: np.ndarray, *, iterations: int, seed: int) -> np.ndarray:
        """Run ``iterations`` Lloyd steps (assign, then mean) from ``init``; return float32 centroids.

        Args:
            frames: ``(n, D)`` float32 points.
            init: ``(K, D)`` starting centroids.
            iterations: Lloyd steps.
            seed: Unused: nothing here draws (kept so faiss and torch runs take the same arguments).
        """
        import torch

        del seed
        with exact_float32(), torch.no_grad():
            points, norms = self._on_device(frames)
            centroids = torch.as_tensor(np.ascontiguousarray(init, dtype=np.float32), device=self.device)
            for _ in range(iterations):
                labels = self._nearest(points, norms, centroids, 1)[1][:, 0]
                centroids = self._means(points, labels, centroids)
            return np.asarray(centroids.cpu().numpy(), dtype=np.float32)

    def nearest_two(self, frames: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Squared distances (float64) and ids (int64) of each frame's two nearest centroids, faiss's way."""
        return self._search(frames, centroids, min(2, len(centroids)))

    def assign(self, frames: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        """Nearest centroid (int64) of every frame; of equally near ones the lowest id, as faiss picks."""
        return self._search(frames, centroids, 1)[1][:, 0]

    def inertia(self, frames: np.ndarray, centroids: np.ndarray) -> float:
        """Sum of squared distances from each frame to its nearest centroid."""
        return float(self._search(frames, centroids, 1)[0].sum())

    def _search(self, frames: np.ndarray, centroids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with exact_float32(), torch.no_grad():
            points, norms = self._on_device(frames)
            centres = torch.as_tensor(np.ascontiguousarray(centroids, dtype=np.float32), device=self.device)
            distances, ids = self._nearest(points, norms, centres, k)
            return distances.cpu().numpy().astype(np.float64), ids.cpu().numpy().astype(np.int64)

    def _on_device(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        if self._held is None or self._held[0] is not frames:
            self._held = None  # free the previous frames before the next ones arrive
            points = torch.as_tensor(np.ascontiguousarray(frames, dtype=np.float32)).to(self.device)
            steps = range(0, max(len(points), 1), self.chunk_rows)  # one empty block when there are no frames
            norms = torch.cat([(points[i : i + self.chunk_rows] ** 2).sum(dim=1) for i in steps])
            self._held = (frames, points, norms)
        return self._held[1], self._held[2]

    def _nearest(
        self, points: torch.Tensor, norms: torch.Tensor, centroids: torch.Tensor, k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        centre_norms = (centroids * centroids).sum(dim=1)
        distances, ids = [], []
        for start in range(0, max(len(points), 1), self.chunk_rows):
            stop = start + self.chunk_rows
            squared = (norms[start:stop, None] + centre_norms[None, :]) - 2.0 * (points[start:stop] @ centroids.T)
            squared.clamp_(min=0.0)
            if k == 1:  # argmin keeps the first minimum, as faiss does; topk's tie order is unspecified
                best = squared.argmin(dim=1, keepdim=True)
                distances.append(squared.gather(1, best))
                ids.append(best)
            else:
                values, indices = squared.topk(k, dim=1, largest=False, sorted=True)
                distances.append(values)
                ids.append(indices)
        return torch.cat(distances), torch.cat(ids)

    def _means(self, points: torch.Tensor, labels: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        import torch

        clusters = len(previous)
        sums = torch.zeros((clusters, points.shape[1]), dtype=torch.float64, device=points.device)
        for start in range(0, len(points), self.chunk_rows):
            chunk = labels[start : start + self.chunk_rows]
            one_hot = torch.zeros((clusters, len(chunk)), dtype=torch.float32, device=points.device)
            one_hot[chunk, torch.arange(len(chunk), device=points.device)] = 1.0
            sums += (one_hot @ points[start : start + self.chunk_rows]).double()
        counts = torch.bincount(labels, minlength=clusters).cpu().numpy()
        centroids = sums / torch.as_tensor(np.maximum(counts, 1), dtype=torch.float64, device=points.device)[:, None]
        return split_empty(centroids.float(), counts)


def split_empty(centroids: torch.Tensor, counts: np.ndarray) -> torch.Tensor:
    """Give each empty cluster (in id order) half of the currently largest one, both pushed ±SPLIT_EPS apart.

    Args:
        centroids: ``(K, D)`` float32 means (an empty cluster's row is ignored).
        counts: Frames per cluster; updated in place as clusters split.

    Returns:
        The centroids with no empty cluster left (unless every frame is in one cluster that cannot split).
    """
    import torch

    empty = np.flatnonzero(counts == 0)
    if len(empty) == 0:
        return centroids
    centroids = centroids.clone()
    signs = torch.ones(centroids.shape[1], dtype=centroids.dtype, device=centroids.device)
    signs[1::2] = -1.0  # alternate the push per coordinate, so the two centroids separate in every direction
    for empty_id in empty:
        largest = int(np.argmax(counts))
        if counts[largest] < 2:
            break
        source = centroids[largest].clone()
        centroids[empty_id] = source * (1.0 + SPLIT_EPS * signs)
        centroids[largest] = source * (1.0 - SPLIT_EPS * signs)
        counts[empty_id] = counts[largest] // 2
        counts[largest] -= counts[empty_id]
    return centroids

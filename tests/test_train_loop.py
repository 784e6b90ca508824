from __future__ import annotations

import io
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from im2sp_models.errors import Im2SpError
from im2sp_models.train_loop import TrainSettings, run_steps, seeded_stream, start
from im2sp_models.training import Sample

SHARDS = {
    "coco/train-00000": [Sample(f"a{i}", np.full((32, 32), i, np.int64), np.arange(i + 1) % 4) for i in range(3)],
    "coco/train-00001": [Sample(f"b{i}", np.full((32, 32), 8 + i, np.int64), np.arange(3) % 4) for i in range(2)],
}
NAMES = list(SHARDS)
TINY: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 37,
    "vision_config": {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 2},
}
SETTINGS = TrainSettings(4, 2, 2, 1e-3, 1e-5, 1, False, 16, 3, TINY, checkpoint_every=2, log_every=1)


def _stream(epoch: int = 0, offset: int = 0) -> Any:
    return seeded_stream(NAMES, lambda i: SHARDS[NAMES[i]], seed=7, epoch=epoch, offset=offset)


def test_each_epoch_visits_every_sample_once_in_a_seeded_order() -> None:
    first = [(epoch, offset, sample.key) for epoch, offset, sample in islice(_stream(), 10)]
    assert first == [(e, o, s.key) for e, o, s in islice(_stream(), 10)]
    for epoch in (0, 1):
        keys = [key for e, _, key in first if e == epoch]
        assert sorted(keys) == ["a0", "a1", "a2", "b0", "b1"]
        assert [o for e, o, _ in first if e == epoch] == [1, 2, 3, 4, 5]
    assert [key for _, _, key in first[:5]] != [key for _, _, key in first[5:]]  # a new order per epoch


def test_a_stream_resumed_at_a_position_continues_the_same_order() -> None:
    whole = [(e, o, s.key) for e, o, s in islice(_stream(), 12)]
    epoch, offset, _ = whole[6]
    assert [(e, o, s.key) for e, o, s in islice(_stream(epoch, offset), 5)] == whole[7:]


def test_shards_without_samples_are_refused() -> None:
    with pytest.raises(Im2SpError, match="no samples"):
        next(seeded_stream(["x"], lambda i: [], seed=0, epoch=0, offset=0))


def _train(checkpoint: Path | None, stop_after: int | None) -> tuple[int, list[dict[str, float]], dict[int, Any]]:
    trainee = start(
        SETTINGS, checkpoint, image_codebook_size=16, speech_units=4, codebook_vectors=lambda: None, device="cpu"
    )
    commits: dict[int, dict[str, bytes]] = {}
    samples = _stream(int(trainee.state["epoch"]), int(trainee.state["offset"]))
    step, history = run_steps(
        trainee, samples, SETTINGS, device="cpu", stop_after=stop_after, commit=commits.__setitem__
    )
    return step, history, commits


def test_a_run_resumed_from_its_checkpoint_files_is_the_uninterrupted_run(tmp_path: Path) -> None:
    step, whole, commits = _train(None, None)
    assert step == 4 and sorted(commits) == [2, 4] and [row["step"] for row in whole] == [1, 2, 3, 4]
    assert {"model.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt", "state.json"} <= set(commits[4])
    cut_step, _, cut = _train(None, 3)
    assert cut_step == 3 and sorted(cut) == [2, 3]  # the end of a call between checkpoints is a checkpoint
    for name, data in cut[3].items():
        (tmp_path / name).write_bytes(data)
    resumed_step, resumed, again = _train(tmp_path, None)
    assert resumed_step == 4 and [row["step"] for row in resumed] == [1, 2, 3, 4]
    assert [row["loss"] for row in resumed] == [row["loss"] for row in whole]
    assert again[4]["model.safetensors"] == commits[4]["model.safetensors"]
    assert again[4]["optimizer.pt"] == commits[4]["optimizer.pt"]


#: Shards of 0 to 5 samples (one empty), so a resume position can fall anywhere, shard ends included.
SIZED = {
    f"coco/train-{i:05d}": [Sample(f"s{i}x{j}", np.full((32, 32), i, np.int64), np.arange(2) % 4) for j in range(n)]
    for i, n in enumerate([3, 0, 5, 1, 4, 2])
}


def _recorded_load(names: list[str], decoded: list[str], i: int) -> list[Sample]:
    decoded.append(names[i])
    return SIZED[names[i]]


def test_a_resumed_stream_decodes_no_shard_before_its_offset() -> None:
    names, sizes = list(SIZED), [len(samples) for samples in SIZED.values()]
    shard_of = {sample.key: name for name, samples in SIZED.items() for sample in samples}
    whole = [
        (e, o, s.key)
        for e, o, s in islice(seeded_stream(names, lambda i: SIZED[names[i]], seed=5, epoch=0, offset=0), 40)
    ]
    for cut in range(35):
        epoch, offset = (0, 0) if cut == 0 else whole[cut - 1][:2]
        decoded: list[str] = []
        load = partial(_recorded_load, names, decoded)
        resumed = seeded_stream(names, load, seed=5, epoch=epoch, offset=offset, sizes=sizes)
        first = next(resumed)
        assert decoded == [shard_of[first[2].key]]  # only the shard that holds the next sample
        rest = [(e, o, s.key) for e, o, s in islice(resumed, 40 - cut - 1)]
        assert [(first[0], first[1], first[2].key), *rest] == whole[cut:]  # bit-identical to the whole stream


def test_a_shard_whose_count_disagrees_with_its_marker_is_refused() -> None:
    with pytest.raises(Im2SpError, match="coco/train-00000"):
        list(islice(seeded_stream(NAMES, lambda i: SHARDS[NAMES[i]], seed=7, epoch=0, offset=0, sizes=[2, 2]), 5))


def test_the_cuda_rng_is_checkpointed_and_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from im2sp_models import train_loop

    cuda_states = [torch.arange(4, dtype=torch.uint8), torch.arange(4, 8, dtype=torch.uint8)]
    restored: list[Any] = []
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: cuda_states)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    saved = train_loop._torch_load(train_loop._torch_bytes(train_loop.rng_states(cuda=True)))
    assert set(saved) == {"cpu", "cuda"} and torch.equal(saved["cpu"], torch.get_rng_state())
    cpu_before = torch.get_rng_state()
    torch.rand(3)  # moves the CPU RNG on
    train_loop.restore_rng_states(saved, cuda=True)
    assert torch.equal(torch.get_rng_state(), cpu_before)
    assert [s.tolist() for s in restored[0]] == [s.tolist() for s in cuda_states]
    restored.clear()
    train_loop.restore_rng_states(saved, cuda=False)  # a CUDA checkpoint resumed on the CPU: CPU state only
    train_loop.restore_rng_states(cpu_before, cuda=True)  # an old checkpoint: rng.pt was the bare CPU state
    assert restored == [] and torch.equal(torch.get_rng_state(), cpu_before)
    assert set(train_loop.rng_states(cuda=False)) == {"cpu"}


def test_a_cpu_checkpoint_holds_no_cuda_rng_and_an_old_rng_file_still_resumes(tmp_path: Path) -> None:
    import torch

    _, whole, _ = _train(None, None)
    _, _, cut = _train(None, 3)
    assert set(torch.load(io.BytesIO(cut[3]["rng.pt"]), weights_only=True)) == {"cpu"}
    for name, data in cut[3].items():
        (tmp_path / name).write_bytes(data)
    old = io.BytesIO()
    torch.save(torch.load(io.BytesIO(cut[3]["rng.pt"]), weights_only=True)["cpu"], old)  # the format before
    (tmp_path / "rng.pt").write_bytes(old.getvalue())
    _, resumed, _ = _train(tmp_path, None)
    assert [row["loss"] for row in resumed] == [row["loss"] for row in whole]

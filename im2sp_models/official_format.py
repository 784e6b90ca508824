"""What the authors' released Im2Sp checkpoints share: the file layout, the speech-unit ids, how outputs are read.

Facts taken from the official repository (ms-dot-k/Image-to-Speech; read, not copied):

**File layout.** ``train_Im_Sp.py`` saves ``{"state_dict": model.state_dict()}`` of its wrapper module
(``Im2Speech``, which holds the GiT as ``self.model``), so every GiT key starts with ``model.``
(``model.git.embeddings.word_embeddings.weight``, ``model.output.weight``, …). Depending on the transformers
version they trained with, ``position_ids`` buffers may be saved too; they carry nothing and are accepted.

**Speech-unit ids** (``src/data/dataset_IM*.py``, ``add_special_room`` / ``del_special_room``). The decoder
vocabulary is GiT-base's BERT special ids reused: PAD 0, BOS ([CLS]) 101, EOS ([SEP]) 102, ``K + 3`` entries
(203 for KM200). A KM200 unit ``u`` becomes: ``u + 1`` when ``u <= 100``, ``u + 3`` when ``u > 100``. Because
the shift for ``u > 100`` is applied before the ``+ 1``, unit 100 becomes token 101, the BOS id, and token 103
is never a target; the inverse (``t - 1``, then ``- 2`` when above 100) maps 101 back to unit 100, 102 to 99 and
103 to 100. Targets are ``[101, units…, 102]`` on consecutive-deduplicated units, padded with 0.

**Output layer.** ``model.output`` is a new ``Linear(768, K + 3)`` (768: git-large's text width) and the word
embeddings are tied to it (``word_embeddings.weight = output.weight``), so a checkpoint holds the same tensor
under both names; ``config.vocab_size`` is set to ``K + 3``.

**Generation** (``IM_Speech.py`` / ``IMunit_Speech.py`` in test mode, run by ``test_Im_Sp*.py``):
``generate(pixel_values=x, max_length=512, early_stopping=True, num_beams=beam_size)`` with a
``GenerationConfig`` of BOS 101, EOS 102, PAD 0 (greedy unless ``num_beams > 1``; no sampling, no length or
repetition penalty). The released scripts run ``--beam_size 1`` and batches of 16. ``max_length`` counts the BOS.

**Reading the output** (``test_Im_Sp*.py``). The BOS column is dropped, each row is joined into a string of
space-separated ids and cut at the first ``" 102 "`` (an EOS with a space on *both* sides), then the special
room is removed and the units saved. Two quirks follow from the string cut: a row whose only EOS is its last
token (the longest row of a batch, which sets the batch's length) or which has no EOS is cut by
``str[:-1]`` -- its last *character* -- so ``… 102`` becomes ``… 10`` (a spurious unit 9) and a row that hit
``max_length`` loses the last digit of its last unit; a row that starts with EOS is not cut there. PAD ids that
survive become -1. :func:`tokens_to_units` reproduces this exactly (``postprocess="as-released"``) or cuts
at the first EOS (``postprocess="clean"``, the default); both then drop ids outside ``[0, K)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from im2sp_models.errors import CheckpointError

PAD_ID, BOS_ID, EOS_ID = 0, 101, 102
SPECIAL_TOKENS = 3
#: Keys of every released checkpoint start with the wrapper's attribute name.
PREFIX = "model."
#: The length their test scripts generate to (BOS included).
MAX_LENGTH = 512
Postprocess = Literal["clean", "as-released"]


def unit_to_token(unit: int) -> int:
    """The decoder id of a KM200 unit, as their datasets build targets."""
    return unit + 3 if unit > 100 else unit + 1


def token_to_unit(token: int) -> int:
    """Their ``del_special_room`` on one id (101 → 100, 102 → 99, 103 → 100, 0 → -1)."""
    value = token - 1
    return value - 2 if value > 100 else value


def _as_released_cut(row: Sequence[int]) -> list[int]:
    """Their string cut on one row (BOS dropped): up to the first ``" 102 "``, else the last character off."""
    for index in range(1, len(row) - 1):  # " 102 " needs a token before and after it
        if row[index] == EOS_ID:
            return list(row[:index])
    text = " ".join(str(token) for token in row)[:-1]
    return [int(piece) for piece in text.split(" ") if piece]


def tokens_to_units(rows: Iterable[Sequence[int]], units: int, postprocess: Postprocess = "clean") -> list[list[int]]:
    """KM200 units of generated rows (each starting with BOS, padded after EOS as ``generate`` returns them).

    Args:
        rows: One batch of generated id rows, all of one length.
        units: K, the speech codebook size (ids outside ``[0, K)`` are dropped).
        postprocess: ``clean``: cut at the first EOS. ``as-released``: their string cut (module docstring).
    """
    result = []
    for row in rows:
        body = [int(token) for token in row[1:]]
        if postprocess == "as-released":
            kept = _as_released_cut(body)
        else:
            kept = body[: body.index(EOS_ID)] if EOS_ID in body else body
        mapped = (token_to_unit(token) for token in kept)
        result.append([unit for unit in mapped if 0 <= unit < units])
    return result


def read_state(path: Path) -> dict[str, Any]:
    """The tensors of a released checkpoint (``{"state_dict": {...}}``), read with ``weights_only=True``.

    Raises:
        CheckpointError: The file is missing, not readable as plain tensors, or has no ``state_dict``.
    """
    import torch

    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file (the released .ckpt of the Im2Sp model)")
    try:
        document = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError or RuntimeError for anything but plain tensors
        raise CheckpointError(f"{path}: cannot be read as plain tensors ({type(error).__name__}: {error})") from error
    state = document.get("state_dict") if isinstance(document, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected {{'state_dict': {{name: tensor}}}} as the authors' training saves")
    return state


def _listed(keys: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}, … ({len(keys)} in all)" if len(keys) > limit else shown


def match_keys(
    path: Path, state: dict[str, Any], model: Any, ignorable: tuple[str, ...] = ("position_ids",)
) -> dict[str, Any]:
    """The checkpoint's tensors renamed to ``model``'s keys, after checking both sides name the same tensors.

    Args:
        path: The checkpoint, for messages.
        state: Its ``state_dict``.
        model: The GiT the tensors are for (its keys without the ``model.`` prefix).
        ignorable: Key fragments that may be present or absent (buffers some versions save, unused modules).

    Raises:
        CheckpointError: Unknown or missing keys (listed), shapes that differ, or untied output/word embeddings.
    """
    expected = {PREFIX + key: value for key, value in model.state_dict().items()}

    def optional(key: str) -> bool:
        return any(fragment in key for fragment in ignorable)

    unknown = sorted(k for k in state if k not in expected and not optional(k))
    missing = sorted(k for k in expected if k not in state and not optional(k))
    if unknown or missing:
        raise CheckpointError(
            f"{path}: not the layout of this released model: "
            + "; ".join(
                part
                for part in (
                    f"unknown keys: {_listed(unknown)}" if unknown else "",
                    f"missing keys: {_listed(missing)}" if missing else "",
                )
                if part
            )
            + " (is it the other official model, or a checkpoint of another version?)"
        )
    shapes = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    )
    if shapes:
        raise CheckpointError(f"{path}: shapes differ from the configured GiT: {_listed(shapes, 6)}")
    tied = (PREFIX + "output.weight", PREFIX + "git.embeddings.word_embeddings.weight")
    if not state[tied[0]].equal(state[tied[1]]):
        raise CheckpointError(f"{path}: {tied[0]} and {tied[1]} differ; the released models tie them")
    return {k[len(PREFIX) :]: v for k, v in state.items() if k in expected}


def speech_units_of(path: Path, state: dict[str, Any]) -> int:
    """K, read off the output layer (``K + 3`` rows).

    Raises:
        CheckpointError: No output layer, or one with fewer than four rows.
    """
    weight = state.get(PREFIX + "output.weight")
    if weight is None or weight.ndim != 2 or weight.shape[0] <= SPECIAL_TOKENS:
        raise CheckpointError(f"{path}: no {PREFIX}output.weight of shape (K + 3, hidden): not a released Im2Sp model")
    return int(weight.shape[0]) - SPECIAL_TOKENS


def git_config(folder: Path | None, kind: str, speech_units: int) -> Any:
    """The ``GitConfig`` of a local folder (``microsoft/git-large`` saved with ``save_pretrained``), vocab ``K + 3``.

    Raises:
        CheckpointError: No folder given, or no GiT config in it.
    """
    from transformers import GitConfig

    if folder is None:
        raise CheckpointError(
            f"{kind} needs git_config: a local folder with microsoft/git-large's config.json (saved with "
            "save_pretrained), which the released checkpoint was built on"
        )
    try:
        config = GitConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{folder}: no GiT config.json ({error})") from error
    config.vocab_size = speech_units + SPECIAL_TOKENS
    return config


def tie_output(model: Any) -> None:
    """Tie the word embeddings to the output layer, as their wrapper does after replacing it."""
    model.git.embeddings.word_embeddings.weight = model.output.weight


def generate_rows(model: Any, pixel_values: Any, *, beams: int, max_length: int) -> list[list[int]]:
    """Their ``generate`` call: BOS 101, EOS 102, PAD 0, ``max_length`` with the BOS, ``early_stopping``."""
    import torch
    from transformers import GenerationConfig

    config = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
        decoder_start_token_id=None,
        max_length=max_length,
        num_beams=beams,
        early_stopping=True,
        do_sample=False,
    )
    start = torch.full((pixel_values.shape[0], 1), BOS_ID, dtype=torch.long, device=pixel_values.device)
    with torch.inference_mode():
        out = model.generate(pixel_values=pixel_values, input_ids=start, generation_config=config)
    return [[int(token) for token in row] for row in out.cpu().tolist()]

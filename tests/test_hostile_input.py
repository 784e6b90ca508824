"""Hostile input: huge or deeply nested annotation files, and code-running checkpoint formats.

Paths that leave the dataset root (``..``, absolute, symlinks out, NUL bytes) are in the bad-input corpus
(``tests/bad_inputs.py``); here: files built to exhaust memory, and every unpickling call site.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from storage.errors import SourceFormatError
from storage.manifests import list_source
from storage.sources.spec import CocoSpec, Flickr8kSpec
from tests.tiny_datasets import coco_entry, write_coco, write_flickr

ROOT = Path(__file__).resolve().parents[1]
_UNPICKLERS = {("torch", "load"), ("joblib", "load"), ("pickle", "load"), ("pickle", "loads"), ("dill", "load")}


def _sparse(path: Path, size: int) -> None:
    """A file of ``size`` bytes that takes no disk space (and would take minutes and gigabytes to parse)."""
    with path.open("r+b" if path.exists() else "wb") as stream:
        stream.truncate(size)


def test_a_1_gib_caption_file_is_refused_unread(tmp_path: Path) -> None:
    write_flickr(tmp_path, {"a.jpg": "train"}, ["a.jpg#0\tA dog."], ["a.wav a.jpg #0"])
    _sparse(tmp_path / "Flickr8k_text" / "Flickr8k.token.txt", 1 << 30)
    with pytest.raises(SourceFormatError, match=r"Flickr8k\.token\.txt: annotation file too large"):
        list_source("flickr8k", Flickr8kSpec(root=tmp_path))


def test_a_1_gib_spoken_coco_file_is_refused_unread(tmp_path: Path) -> None:
    write_coco(tmp_path, [coco_entry(1, "train", ["A dog."])])
    _sparse(tmp_path / "SpokenCOCO" / "SpokenCOCO_train.json", 1 << 30)
    with pytest.raises(SourceFormatError, match=r"SpokenCOCO_train\.json: annotation file too large"):
        list_source("coco", CocoSpec(root=tmp_path))


def test_deeply_nested_json_is_a_format_error(tmp_path: Path) -> None:
    write_coco(tmp_path, [coco_entry(1, "train", ["A dog."])], speech=False)
    (tmp_path / "karpathy" / "dataset_coco.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(SourceFormatError, match="nested too deeply"):
        list_source("coco", CocoSpec(root=tmp_path))


def _enclosing_function(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> ast.FunctionDef | None:
    scope = parents.get(node)
    while scope is not None and not isinstance(scope, ast.FunctionDef):
        scope = parents.get(scope)
    return scope


def _unpickling_calls() -> list[tuple[Path, ast.Call, ast.FunctionDef | None]]:
    found = []
    sources = sorted(
        p for folder in ("flows", "tasks", "im2sp_models", "storage") for p in (ROOT / folder).rglob("*.py")
    )
    for path in sources:
        tree = ast.parse(path.read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = node.func.value
            if isinstance(owner, ast.Name) and (owner.id, node.func.attr) in _UNPICKLERS:
                found.append((path, node, _enclosing_function(node, parents)))
    return found


def _refuses_untrusted(function: ast.FunctionDef | None) -> bool:
    """Whether the function starts by raising unless ``trust_pickle`` is set."""
    if function is None:
        return False
    for statement in function.body:
        if (
            isinstance(statement, ast.If)
            and ast.unparse(statement.test) == "not trust_pickle"
            and any(isinstance(s, ast.Raise) for s in statement.body)
        ):
            return True
    return False


def test_every_unpickling_call_is_weights_only_or_behind_trust_pickle() -> None:
    calls = _unpickling_calls()
    assert len(calls) >= 5  # the scan finds the loaders (checkpoints, vocoders, training state, km.bin)
    unsafe = []
    for path, call, function in calls:
        weights_only = {k.arg: k.value for k in call.keywords}.get("weights_only")
        safe = isinstance(weights_only, ast.Constant) and weights_only.value is True
        if not safe and not _refuses_untrusted(function):
            unsafe.append(f"{path.relative_to(ROOT)}:{call.lineno} {ast.unparse(call)}")
    assert unsafe == [], "unpickling without weights_only=True or a trust_pickle guard:\n" + "\n".join(unsafe)

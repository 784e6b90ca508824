"""The bad-input corpus through the real flows, once: damaged items rejected with reasons, unusual ones stored.

Also: no flow crashes, and counts add up per dataset and modality (listed = stored + rejected).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

import pytest

from flows.config import PipelineConfig
from storage.kinds import IMAGE_UNITS, MANIFESTS, SPEECH_FEATURES, SPEECH_UNITS
from storage.manifests import read_table
from storage.sources.records import OK
from storage.store import Store
from storage.versions import current_version, list_versions
from tests.bad_inputs import KINDS, Corpus, Kind, Table, Target, build_corpus
from tests.tiny_datasets import tiny_config

#: The shard stages each manifest table's ok items go through, by the flow that writes them.
STAGES: dict[Table, dict[str, str]] = {
    "images": {"tokenize-images": IMAGE_UNITS},
    "captions": {},
    "utterances": {"extract-speech-features": SPEECH_FEATURES, "unitize-speech": SPEECH_UNITS},
}


@dataclass
class Outcome:
    """What happened to one target row: rejections (stage, reason), stages that stored it, stages that lost it."""

    rejections: list[tuple[str, str]] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)


@dataclass
class CorpusRun:
    """The corpus after one pass of the flows."""

    corpus: Corpus
    targets: dict[str, list[Target]]
    crashes: dict[str, str]
    rows: dict[tuple[str, Table], list[dict[str, Any]]]
    stages: dict[tuple[str, str], dict[str, tuple[bool, str]]]  # (dataset, stage) → key → (stored, reason)
    seconds: float


class CorpusSummary(NamedTuple):
    """Figures the docs quote: kinds tried, kinds rejected with a reason naming the problem, flow crashes."""

    kinds_tried: int
    kinds_rejected_with_reason: int
    crashes: int


def _run_flows(corpus: Corpus, config: PipelineConfig) -> dict[str, str]:
    """Run every flow in pipeline order; return the crashes by flow (and dataset, for build-manifests)."""
    from flows.build_manifests import build_manifests_flow
    from flows.extract_speech_features import extract_speech_features_flow
    from flows.learn_image_codebook import learn_image_codebook_flow
    from flows.learn_speech_codebook import learn_speech_codebook_flow
    from flows.tokenize_images import tokenize_images_flow
    from flows.unitize_speech import unitize_speech_flow

    crashes: dict[str, str] = {}

    def attempt(name: str, call: Callable[[], object]) -> None:
        try:
            call()
        except Exception as error:  # a crash is a finding: recorded, reported, and the next flow still runs
            crashes[name] = "".join(traceback.format_exception_only(error)).strip()[:600]

    # One build-manifests run per dataset: a dataset whose annotation file is refused cannot hide the others.
    for name, spec in config.datasets.items():
        attempt(f"build-manifests[{name}]", partial(build_manifests_flow, _only(config, {name: spec})))
    for change in corpus.after_manifests:
        change()
    store = config.store.open()
    built = {n: s for n, s in config.datasets.items() if current_version(store, n, MANIFESTS) is not None}
    downstream = _only(config, built)
    for name, flow in (
        ("learn-image-codebook", learn_image_codebook_flow),
        ("tokenize-images", tokenize_images_flow),
        ("extract-speech-features", extract_speech_features_flow),
        ("learn-speech-codebook", learn_speech_codebook_flow),
        ("unitize-speech", unitize_speech_flow),
    ):
        attempt(name, partial(flow, downstream))
    return crashes


def _only(config: PipelineConfig, datasets: dict[str, Any]) -> PipelineConfig:
    return config.model_copy(update={"datasets": datasets})


def _collect(store: Store, datasets: list[str]) -> tuple[dict[Any, list[dict[str, Any]]], dict[Any, dict[str, Any]]]:
    rows: dict[Any, list[dict[str, Any]]] = {}
    stages: dict[Any, dict[str, Any]] = {}
    for dataset in datasets:
        manifests = current_version(store, dataset, MANIFESTS)
        if manifests is None:
            continue
        for table, flows in STAGES.items():
            rows[dataset, table] = read_table(manifests, table).select(["id", "status", "reason"]).to_pylist()
            for stage, kind in flows.items():
                seen: dict[str, tuple[bool, str]] = {}
                for version in list_versions(store, dataset, kind):
                    for marker in version.committed().values():
                        seen.update({key: (True, "") for key in marker.keys})
                        seen.update({r.key: (False, r.reason) for r in marker.rejected})
                stages[dataset, stage] = seen
    return rows, stages


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> CorpusRun:
    root = tmp_path_factory.mktemp("bad-inputs")
    started = time.perf_counter()
    corpus, targets = build_corpus(root, KINDS)
    config = tiny_config(root, {"datasets": corpus.dataset_specs()}, shard_size=4)
    crashes = _run_flows(corpus, config)
    rows, stages = _collect(config.store.open(), list(corpus.layouts))
    return CorpusRun(corpus, targets, crashes, rows, stages, time.perf_counter() - started)


def outcome(run: CorpusRun, target: Target) -> Outcome:
    """Follow one target row through the manifests and every shard stage of its modality."""
    result = Outcome()
    rows = run.rows.get((target.dataset, target.table))
    if rows is None:
        result.absent.append(f"build-manifests (dataset {target.dataset!r} has no manifests)")
        return result
    matching = [row for row in rows if row["id"] == target.item_id]
    if len(matching) <= target.occurrence:
        result.absent.append(f"build-manifests (listed, but {len(matching)} manifest row(s) with this id)")
        return result
    row = matching[target.occurrence]
    if row["status"] != OK:
        result.rejections.append(("build-manifests", row["reason"]))
        return result
    if not STAGES[target.table]:
        result.stored.append("build-manifests")
    for stage in STAGES[target.table]:
        seen = run.stages[target.dataset, stage].get(target.item_id)
        if seen is None:
            result.absent.append(stage)
        elif seen[0]:
            result.stored.append(stage)
        else:
            result.rejections.append((stage, seen[1]))
    return result


def problems(run: CorpusRun, kind: Kind) -> list[str]:
    """Why a kind's targets did not end as expected (empty when they did)."""
    found = []
    for target in run.targets[kind.name]:
        seen = outcome(run, target)
        where = f"{target.table} {target.item_id!r}"
        if seen.absent:
            found.append(f"{where}: silently absent from {', '.join(seen.absent)}")
        if kind.expected == "stored":
            found += [f"{where}: rejected by {stage}: {reason!r}" for stage, reason in seen.rejections]
            continue
        if not seen.rejections and not seen.absent:
            found.append(f"{where}: not rejected (stored by {', '.join(seen.stored) or 'nothing'})")
        if seen.stored and seen.rejections:
            found.append(f"{where}: stored by {', '.join(seen.stored)} although rejected by another stage")
        for stage, reason in seen.rejections:
            if not any(word.lower() in reason.lower() for word in kind.words):
                found.append(f"{where}: {stage} gave a reason naming none of {kind.words}: {reason!r}")
    return found


def count_mismatches(run: CorpusRun) -> list[str]:
    """Per dataset, table and shard stage: listed = stored + manifest-rejected + shard-rejected."""
    found = []
    for (dataset, table), listed in run.corpus.listed().items():
        rows = run.rows.get((dataset, table))
        if rows is None:
            continue  # a build-manifests crash, reported on its own
        rejected = sum(row["status"] != OK for row in rows)
        if len(rows) != listed:
            found.append(f"{dataset}/{table}: {listed} listed but {len(rows)} manifest rows")
        for stage in STAGES[table]:
            seen = run.stages[dataset, stage].values()
            stored, dropped = sum(ok for ok, _ in seen), sum(not ok for ok, _ in seen)
            if listed != stored + rejected + dropped:
                found.append(
                    f"{dataset}/{table}/{stage}: listed {listed} != stored {stored} + manifest-rejected {rejected}"
                    f" + shard-rejected {dropped}"
                )
    return found


def summary(run: CorpusRun) -> CorpusSummary:
    """Kinds tried, kinds rejected with a reason that names the problem, flow crashes."""
    rejected = sum(1 for kind in KINDS if kind.expected == "rejected" and not problems(run, kind))
    return CorpusSummary(len(KINDS), rejected, len(run.crashes))


def report(run: CorpusRun) -> str:
    """One line per kind (expected, observed reason or problem), then the summary."""
    lines = []
    for kind in KINDS:
        found = problems(run, kind)
        reasons = {r for t in run.targets[kind.name] for _, r in outcome(run, t).rejections}
        observed = "; ".join(sorted(reasons)) if reasons else "stored"
        verdict = "ok  " if not found else "FAIL"
        lines.append(f"{verdict} {kind.name:36} {kind.expected:8} {(found[0] if found else observed)[:150]}")
    lines += [f"crash {name}: {error.splitlines()[-1][:200]}" for name, error in run.crashes.items()]
    figures = summary(run)
    stored = sum(1 for kind in KINDS if kind.expected == "stored" and not problems(run, kind))
    lines.append(
        f"{figures.kinds_tried} kinds tried, {figures.kinds_rejected_with_reason} rejected with a reason, "
        f"{stored} valid-but-unusual stored, {figures.crashes} flow crashes; {run.seconds:.1f} s"
    )
    return "\n".join(lines)


def test_the_corpus_has_enough_distinct_kinds() -> None:
    names = [kind.name for kind in KINDS]
    assert len(names) >= 30 and len(set(names)) == len(names)
    assert {kind.modality for kind in KINDS} == {"image", "audio", "annotation"}
    assert {kind.expected for kind in KINDS} == {"rejected", "stored"}
    assert all(kind.words for kind in KINDS if kind.expected == "rejected")


def test_no_flow_crashes(corpus_run: CorpusRun) -> None:
    assert not corpus_run.crashes, "\n".join(f"{name}: {error}" for name, error in corpus_run.crashes.items())


@pytest.mark.parametrize("name", [kind.name for kind in KINDS])
def test_kind(corpus_run: CorpusRun, name: str) -> None:
    kind = next(kind for kind in KINDS if kind.name == name)
    assert corpus_run.targets[name], f"{name} built no item"
    found = problems(corpus_run, kind)
    assert not found, "\n".join(found)


def test_counts_add_up_per_dataset_and_modality(corpus_run: CorpusRun) -> None:
    found = count_mismatches(corpus_run)
    assert not found, "\n".join(found)


def test_reasons_name_files_not_python_objects(corpus_run: CorpusRun) -> None:
    reasons = {row["reason"] for rows in corpus_run.rows.values() for row in rows if row["status"] != OK}
    reasons |= {reason for seen in corpus_run.stages.values() for ok, reason in seen.values() if not ok}
    assert not any(reason.strip() == "" for reason in reasons)
    leaking = sorted(r for r in reasons if " object at 0x" in r)  # differs per run and names no file
    assert not leaking, "\n".join(leaking)


def test_summary(corpus_run: CorpusRun, capsys: pytest.CaptureFixture[str]) -> None:
    figures = summary(corpus_run)
    with capsys.disabled():
        print("\nbad-input corpus:\n" + report(corpus_run))
    assert figures.kinds_tried == len(KINDS) >= 30
    assert corpus_run.seconds < 90

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flows.config import PipelineConfig
from storage.errors import ConfigError
from storage.kinds import IMAGE_UNITS, SPEECH_UNITS
from storage.store import Store
from storage.versions import StoreVersion, apply_retention, current_version, list_versions, stale_versions
from tests.tiny_datasets import coco_entry, tiny_config, write_coco


def _config(root: Path, **overrides: dict[str, Any]) -> PipelineConfig:
    return tiny_config(root, {"retokenize": {"retention": 2}, **overrides})


def _version(store: Store, name: str, created_at: str) -> StoreVersion:
    version = StoreVersion(store, "ds", IMAGE_UNITS, name)
    version.ensure_created({})
    document = version.info()
    document["created_at"] = created_at
    store.write_json(f"{version.prefix}/version.json", document)
    return version


def test_retention_keeps_the_current_and_newest_older_versions_and_any_newer_build(store: Store) -> None:
    for name, day in (("a", 1), ("b", 2), ("c", 3), ("current", 4), ("building", 5)):
        _version(store, name, f"2026-11-0{day}T00:00:00+00:00")
    StoreVersion(store, "ds", IMAGE_UNITS, "current").publish([])
    assert [v.version for v in stale_versions(store, "ds", IMAGE_UNITS)] == ["building", "c", "b", "a"]
    assert apply_retention(store, "ds", IMAGE_UNITS, keep=2) == ["b", "a"]
    assert {v.version for v in list_versions(store, "ds", IMAGE_UNITS)} == {"building", "c", "current"}
    assert apply_retention(store, "ds", IMAGE_UNITS, keep=1) == ["c"]
    assert apply_retention(store, "other", IMAGE_UNITS, keep=1) == []  # nothing published: nothing deleted
    with pytest.raises(ValueError, match="at least 1"):
        apply_retention(store, "ds", IMAGE_UNITS, keep=0)


def test_dataset_selection_and_cron_are_validated(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert list(config.selected(None)) == ["coco"] and list(config.selected(["coco"])) == ["coco"]
    with pytest.raises(ConfigError, match="unknown dataset"):
        config.selected(["nope"])
    with pytest.raises(ConfigError, match="five fields"):
        _config(tmp_path, retokenize={"cron": "daily"})


def test_serve_builds_a_deployment_per_flow_with_the_trigger_and_schedule(tmp_path: Path) -> None:
    from flows.plans import CODEBOOK_EVENT
    from flows.registry import FLOWS
    from flows.serve import build_deployments

    deployments = {d.name: d for d in build_deployments(_config(tmp_path, retokenize={"cron": "5 4 * * *"}))}
    assert set(deployments) == set(FLOWS)
    assert all(d.parameters["config"]["store"]["url"] == str(tmp_path / "store") for d in deployments.values())
    retokenize: Any = deployments["retokenize-images"]
    (trigger,) = retokenize.triggers
    assert set(trigger.expect) == {CODEBOOK_EVENT}
    assert trigger.parameters == {"codebook_id": "{{ event.payload.codebook_id }}", "kind": "{{ event.payload.kind }}"}
    assert [s.schedule.cron for s in retokenize.schedules] == ["5 4 * * *"]
    assert not deployments["tokenize-images"].triggers and not deployments["tokenize-images"].schedules


def test_retokenize_rebuilds_only_stale_stores_and_applies_retention(tmp_path: Path, prefect_harness: None) -> None:
    from flows.learn_image_codebook import learn_image_codebook_flow
    from flows.learn_speech_codebook import learn_speech_codebook_flow
    from flows.pipeline import pipeline_flow
    from flows.plans import training_plan
    from flows.report import history, storage_report_flow
    from flows.retokenize_images import retokenize_images_flow

    write_coco(tmp_path / "coco", [coco_entry(1, "train", ["A dog."]), coco_entry(2, "test", ["A cat."])])
    config = _config(tmp_path)
    store = config.store.open()
    pipeline_flow(config)
    first = current_version(store, "coco", IMAGE_UNITS)
    speech_first = current_version(store, "coco", SPEECH_UNITS)
    assert first is not None and speech_first is not None

    nothing = retokenize_images_flow(config)
    assert [(o.kind, o.stale, o.rebuilt) for o in nothing] == [("image", [], []), ("speech", [], [])]

    codebooks = []
    for seed in (1, 2):
        newer = _config(tmp_path, image_tokenizer={"seed": seed})
        codebooks.append(learn_image_codebook_flow(newer).codebook_id)
        (image,) = retokenize_images_flow(config, codebook_id=codebooks[-1], kind="image")
        assert (image.stale, image.rebuilt, image.expected_version) == (["coco"], ["coco"], codebooks[-1])
        current = current_version(store, "coco", IMAGE_UNITS)
        assert current is not None and current.version == codebooks[-1]
    # retention 2 puts the first version past the newest two, but the current training shards still name it: kept
    assert {v.version for v in list_versions(store, "coco", IMAGE_UNITS)} == {*codebooks, first.version}
    assert first.version not in codebooks and "training-shards" in image.kept["coco"][first.version]
    training_plan(config)  # the current training shards' inputs are all there: training and evaluation can read them

    learn_speech_codebook_flow(_config(tmp_path, speech={"seed": 1}))
    (speech,) = retokenize_images_flow(config, kind="speech")
    assert speech.stale == ["coco"] and speech.expected_version != speech_first.version
    current_speech = current_version(store, "coco", SPEECH_UNITS)
    assert current_speech is not None and current_speech.version == speech.expected_version
    from storage.vocoder_store import current_vocoder

    new_codebook = current_speech.info()["produced_by"]["codebook"]
    assert current_vocoder(store, new_codebook) is not None and f"codebook {new_codebook}" in speech.note

    document = storage_report_flow(config)
    stale = {(v["kind"], v["version"]) for v in document["stale_versions"]}
    assert (IMAGE_UNITS, codebooks[0]) in stale
    assert document["reclaimable_bytes"] == sum(v["stored_bytes"] for v in document["stale_versions"]) > 0
    kept = {(v["kind"], v["version"]): v["kept_because"] for v in document["kept_versions"]}
    for kind, version in ((IMAGE_UNITS, first.version), (SPEECH_UNITS, speech_first.version)):
        assert kept[(kind, version)].startswith("named by training-shards"), kind  # the current training shards'
        assert (kind, version) not in stale  # never called reclaimable
    units = [e for e in document["entries"] if e["representation"] == "units"]
    assert {(e["modality"], e["codebook"]) for e in units} >= {("image", codebooks[-1])}
    # A damaged kept report is left out of the trend, named, and never stops the report.
    (tmp_path / "store" / "reports" / "storage" / "20000101T000000Z.json").write_text('{"entries": [{"modal')
    storage_report_flow(config)
    unreadable: list[str] = []
    # The pipeline's report and the one after retokenizing; the last run measured the same store again, so it
    # kept no third report (a repeat adds nothing to the trend).
    assert len(history(store, unreadable=unreadable)) == 2
    assert unreadable == ["20000101T000000Z.json"]
    assert next((tmp_path / "store" / "reports" / "storage").glob("*.png")).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(Exception, match="kind must be"):
        retokenize_images_flow(config, kind="video")

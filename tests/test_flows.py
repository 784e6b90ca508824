from __future__ import annotations

from pathlib import Path

from flows.config import parse_config
from flows.pipeline import pipeline_flow
from flows.registry import FLOWS
from tests.tiny_datasets import coco_entry, tiny_config, write_coco


def test_flow_names_are_deployment_names() -> None:
    for name, flow in FLOWS.items():
        assert flow.name == name


def test_pipeline_flow_runs_on_prefect(tmp_path: Path, prefect_harness: None) -> None:
    write_coco(tmp_path / "coco", [coco_entry(1, "train", ["A dog."]), coco_entry(2, "test", ["A cat."])])
    config = tiny_config(tmp_path)
    results = pipeline_flow(config)["build-manifests"]
    assert [(r.dataset, r.skipped, r.counts["images"]["ok"]) for r in results] == [("coco", False, 2)]
    assert (tmp_path / "store/coco/manifests/current.json").exists()
    again = pipeline_flow(config)
    (units,) = again["tokenize-images"]
    assert (units.stored, units.shards_built, units.shards_skipped) == (2, 0, 2)  # the rerun built nothing
    (speech,) = again["unitize-speech"]
    assert (speech.stored, speech.shards_built) == (2, 0)


def test_build_manifests_on_a_dask_cluster(tmp_path: Path, prefect_harness: None) -> None:
    from flows.build_manifests import build_manifests_flow

    write_coco(tmp_path / "coco", [coco_entry(1, "train", ["A dog."])], speech=False)
    write_coco(tmp_path / "coco2", [coco_entry(2, "val", ["A cat."]), coco_entry(3, "test", ["Sky."])], speech=False)
    config = parse_config(
        {
            "datasets": {"coco": {"kind": "coco", "root": "coco"}, "other": {"kind": "coco", "root": "coco2"}},
            "runner": {"kind": "dask"},
        },
        base=tmp_path,
    )
    results = build_manifests_flow(config)  # the flow opens a local Dask cluster for its tasks
    assert {r.dataset: r.counts["images"]["ok"] for r in results} == {"coco": 1, "other": 2}


def test_learn_image_codebook_emits_the_event(tmp_path: Path, prefect_harness: None) -> None:
    import asyncio

    from prefect.client.orchestration import get_client

    from flows.build_manifests import build_manifests_flow
    from flows.learn_image_codebook import learn_image_codebook_flow
    from flows.plans import CODEBOOK_EVENT

    write_coco(tmp_path / "coco", [coco_entry(7, "train", ["A dog."])], speech=False)
    config = parse_config(
        {"datasets": {"coco": {"kind": "coco", "root": "coco"}}, "image_tokenizer": {"codebook_size": 16, "niter": 2}},
        base=tmp_path,
    )
    build_manifests_flow(config)
    ref = learn_image_codebook_flow(config)
    assert ref.images == 1 and (tmp_path / "store/_shared/image-codebook/current.json").exists()

    async def payloads() -> list[dict[str, str]]:
        async with get_client() as client:
            for _ in range(60):
                response = await client._client.post(
                    "/events/filter", json={"filter": {"event": {"name": [CODEBOOK_EVENT]}}, "limit": 50}
                )
                found = [e["payload"] for e in response.json().get("events", [])]
                if any(p.get("codebook_id") == ref.codebook_id for p in found):
                    return found
                await asyncio.sleep(0.5)
        return []

    matching = [p for p in asyncio.run(payloads()) if p.get("codebook_id") == ref.codebook_id]
    assert matching and matching[0]["url"] == ref.url and matching[0]["kind"] == "image"
    assert not ref.reused
    again = learn_image_codebook_flow(config)  # same images, same settings: neither trains nor writes
    assert again.reused and again.codebook_id == ref.codebook_id and again.images == ref.images
    retrained = learn_image_codebook_flow(
        config.model_copy(update={"image_tokenizer": config.image_tokenizer.model_copy(update={"niter": 3})})
    )
    assert not retrained.reused

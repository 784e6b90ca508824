"""The store on S3: a real S3-protocol server (moto's, on 127.0.0.1) that checks credentials.

The sample pipeline runs end to end into ``s3://…`` and the storage report reads it back; credentials come
from the environment or from a Prefect Secret block, and the secret never shows in runs, logs or artifacts.
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app, run_flow
from tests.tiny_datasets import coco_entry, tiny_config, write_coco

pytestmark = pytest.mark.timeout(900)
BUCKET = "im2sp-test"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    key: str
    secret: str


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """Moto's S3 server on a free loopback port; after set-up, only the access key made here is accepted."""
    import boto3
    import requests
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # The next 4 calls run unauthenticated; every later request must be signed with a known key.
    requests.post(f"{endpoint}/moto-api/reset-auth", data=b"4", timeout=30).raise_for_status()
    setup = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "x",
        "aws_secret_access_key": "x",
    }
    iam = boto3.client("iam", **setup)
    iam.create_user(UserName="im2sp")
    key = iam.create_access_key(UserName="im2sp")["AccessKey"]
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="im2sp", PolicyName="s3", PolicyDocument=json.dumps(policy))
    boto3.client("s3", **setup).create_bucket(Bucket=BUCKET)
    try:
        yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"inf", timeout=30)
        server.stop()


@pytest.fixture(autouse=True)
def _fresh_filesystems(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No cached s3fs client carries credentials from one test into the next; none from the environment."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    yield
    # Drop the clients' aiohttp sessions now: collected later, inside an unrelated ast.parse, their
    # "unclosed session" logging trips CPython 3.11.7's AST recursion check (SystemError at session end).
    s3fs.S3FileSystem.clear_instance_cache()
    gc.collect()


def _invoke(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_sample_pipeline_into_s3_then_the_storage_report(
    s3: S3Server, sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> None:
    import s3fs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret)
    document = yaml.safe_load((sample_dir / "pipeline.yaml").read_text())
    document["store"] = {"url": f"s3://{BUCKET}/pipeline", "storage_options": {"endpoint_url": s3.endpoint}}
    for name in ("coco", "flickr8k"):
        document["datasets"][name]["root"] = str(sample_dir / name)
    document["training"].update(steps=3, checkpoint_every=2)
    document["evaluation"]["asr"] = "wav2vec2-ctc"  # no checkpoint: the ASR topline is skipped (fast)
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(document))

    _invoke("run", "im2sp-pipeline", "--config", str(config))
    entries = json.loads(_invoke("report", "storage", "--config", str(config), "--json").output)["entries"]
    units = {(e["dataset"], e["modality"]): e for e in entries if e["representation"] == "units"}
    assert set(units) == {(d, m) for d in ("coco", "flickr8k") for m in ("image", "speech")}
    assert all(e["path"].startswith(f"s3://{BUCKET}/pipeline/") and e["stored_bytes"] > 0 for e in units.values())
    assert units[("coco", "image")]["items"] == 26 and units[("coco", "speech")]["items"] == 135
    fs = s3fs.S3FileSystem(endpoint_url=s3.endpoint, key=s3.key, secret=s3.secret)
    listed = {Path(p).name for p in fs.ls(f"{BUCKET}/pipeline")}
    assert {"coco", "flickr8k", "_shared", "reports"} <= listed
    assert any(p.endswith(".json") for p in fs.ls(f"{BUCKET}/pipeline/reports/storage"))
    again = run_flow("tokenize-images", config)  # a rerun finds every shard committed in the bucket
    assert isinstance(again, list) and all(r.shards_built == 0 and r.shards_skipped > 0 for r in again)


def test_credentials_from_a_secret_block_never_shown(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> None:
    import asyncio

    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client

    from flows.build_manifests import build_manifests_flow
    from storage.errors import ConfigError

    Secret(value={"key": s3.key, "secret": s3.secret}).save("im2sp-test-store", overwrite=True)
    write_coco(tmp_path / "coco", [coco_entry(1, "train", ["A dog."]), coco_entry(2, "test", ["A cat."])])
    store = {"url": f"s3://{BUCKET}/secret", "storage_options": {"endpoint_url": s3.endpoint}}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")  # the environment's key is refused
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(PermissionError):
        build_manifests_flow(tiny_config(tmp_path, {"store": store}))

    config = tiny_config(tmp_path, {"store": {**store, "secret": "im2sp-test-store"}})
    state = build_manifests_flow(config, return_state=True)
    (result,) = state.result()
    assert result.counts["images"]["ok"] == 2 and result.url.startswith(f"s3://{BUCKET}/secret/")

    async def shown() -> str:
        async with get_client() as client:
            assert state.state_details.flow_run_id is not None
            run = await client.read_flow_run(state.state_details.flow_run_id)
            logs = await client.read_logs()
            artifacts = await client.read_artifacts()
        return json.dumps([run.parameters, [log.message for log in logs], [a.data for a in artifacts]], default=str)

    text = asyncio.run(shown())
    assert "im2sp-test-store" in text  # the block's name is in the run's parameters…
    assert s3.secret not in text and s3.key not in text  # …its value is nowhere
    with pytest.raises(ConfigError, match="no Prefect Secret block named 'no-such-block'"):
        tiny_config(tmp_path, {"store": {**store, "secret": "no-such-block"}}).store.open()

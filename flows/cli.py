"""The ``im2sp`` command line: sample data, running flows, the demo, storage reports."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from flows.cli_errors import DEBUG_VARIABLE, quiet_prefect_console, reported, user_paths

if TYPE_CHECKING:
    from flows.config import PipelineConfig

app = typer.Typer(help="Offline data pipeline for image-to-speech captioning.", no_args_is_help=True)
report_app = typer.Typer(help="Reports on the stores.", no_args_is_help=True)
app.add_typer(report_app, name="report")
codebook_app = typer.Typer(help="Codebooks: import ones trained elsewhere.", no_args_is_help=True)
app.add_typer(codebook_app, name="codebook")
console = Console()
error_console = Console(stderr=True)  # messages that must not mix into --json output

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Pipeline YAML config.", exists=False)]


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help=f"Show tracebacks instead of one-line errors (or set {DEBUG_VARIABLE}=1).")
    ] = False,
) -> None:
    if debug:
        os.environ[DEBUG_VARIABLE] = "1"


def _absolute_paths(document: Any) -> Iterator[str]:
    if isinstance(document, dict):
        for value in document.values():
            yield from _absolute_paths(value)
    elif isinstance(document, list):
        for value in document:
            yield from _absolute_paths(value)
    elif isinstance(document, str) and Path(document).is_absolute():
        yield document


def load_config(config_path: Path) -> PipelineConfig:
    """Load the config; its store and every path it names are the user's (an OSError there is not a bug)."""
    from flows.config import load_config as load

    config = load(config_path)
    user_paths(config.store.url, *_absolute_paths(config.model_dump(mode="json")))  # resolved: roots, checkpoints
    return config


@app.command("sample-data")
def sample_data(directory: Annotated[Path, typer.Argument(help="Folder to write the sample datasets into.")]) -> None:
    """Write small COCO and Flickr8k datasets in their real layouts, plus DIR/pipeline.yaml."""
    from storage.sample.build import write_sample_data

    with console.status("writing sample images, captions and speech (Piper)…"), reported(directory):
        config = write_sample_data(directory)
    console.print(f"sample data written; config: [bold]{config}[/bold]")


def run_flow(name: str, config_path: Path) -> object:
    """Run one flow in this process (ephemeral Prefect unless PREFECT_API_URL is set) and print a summary."""
    from flows.console import RichProgressSink
    from flows.ephemeral_server import guard_ephemeral_server
    from flows.registry import get_flow, render_results
    from storage.progress import set_sink

    config = load_config(config_path)
    flow = get_flow(name)
    quiet_prefect_console()  # prefect is imported by now: its console handlers exist
    guard_ephemeral_server()  # without PREFECT_API_URL: a server that dies with this process, even by SIGKILL
    set_sink(RichProgressSink(console))
    try:
        results = flow(config)  # shard tasks run where config.runner says (flows/runner.py)
    finally:
        set_sink(None)
    render_results(console, name, results)
    return results


@app.command("run")
def run(flow: Annotated[str, typer.Argument(help="Flow name, e.g. build-manifests.")], config: ConfigOption) -> None:
    """Run one flow locally with the given config."""
    with reported():
        run_flow(flow, config)


@app.command("demo")
def demo(workdir: Annotated[Path, typer.Option("--workdir", help="Folder for sample data and store.")]) -> None:
    """Build the sample data (once), run the whole pipeline on it and print the storage report."""
    config = workdir / "pipeline.yaml"
    with reported(workdir):
        if not config.exists():
            sample_data(workdir)
        run_flow("im2sp-pipeline", config)  # ends with storage-report, whose table it prints


def _print_storage(config_path: Path, *, as_json: bool) -> None:
    from flows.console import stale_table, storage_table, unmeasured_table
    from flows.report import measure_storage

    measured = measure_storage(load_config(config_path))
    if as_json:
        typer.echo(json.dumps(measured.document(), indent=1))
    else:
        console.print(storage_table(measured.entries))
        if measured.stale:
            console.print(stale_table(measured.stale))
        if measured.unmeasured:
            console.print(unmeasured_table(measured.unmeasured))
    if measured.unmeasured:  # the sizes above are still right; a script must not take them as the whole store
        where = "`unmeasured` in the JSON" if as_json else "the table above"
        error_console.print(f"[red]{len(measured.unmeasured)} store(s) could not be measured[/red]; see {where}")
        raise typer.Exit(code=1)


@app.command("verify")
def verify(
    config: ConfigOption,
    flag: Annotated[
        bool, typer.Option("--flag/--no-flag", help="Flag damaged shards so a rerun rebuilds them.")
    ] = True,
) -> None:
    """Re-hash every committed shard of the store; list the damaged ones (exit code 1 when there are any)."""
    from flows.console import damage_table
    from storage.verify import verify_store

    with reported():
        loaded = load_config(config)
        report = verify_store(loaded.store.open(), loaded.datasets, flag=flag)
    console.print(f"checked {report.shards} shard(s) in {report.versions} store version(s)")
    if not report.damaged:
        console.print("[green]no damaged shard[/green]")
        return
    console.print(damage_table(report.damaged))
    flows = sorted({d.rebuilt_by for d in report.damaged})
    shards = sum(not d.is_control for d in report.damaged)
    controls = len(report.damaged) - shards
    found = f"{shards} damaged shard(s)" + (f", {controls} damaged control file(s)" if controls else "")
    then = f"rerun {', '.join(flows)} to rebuild (or rewrite) exactly these"
    if shards:  # control files are never flagged: their flow's next run rewrites them anyway
        then = f"shards flagged; {then}" if flag else f"not flagged (--no-flag); {then}"
    console.print(f"[red]{found}[/red]; {then}")
    raise typer.Exit(code=1)


@app.command("serve")
def serve_command(config: ConfigOption) -> None:
    """Serve every flow as a Prefect deployment (named like the flow) with this config; Ctrl-C stops."""
    from flows.ephemeral_server import guard_ephemeral_server
    from flows.serve import serve

    with reported():
        loaded = load_config(config)
        guard_ephemeral_server()
        serve(loaded)


@report_app.command("storage")
def report_storage(
    config: ConfigOption, as_json: Annotated[bool, typer.Option("--json", help="Print the JSON contract.")] = False
) -> None:
    """Report items, raw bits and bytes on disk per dataset, modality and representation."""
    with reported():
        _print_storage(config, as_json=as_json)


def _print_evaluations(config_path: Path, *, as_json: bool) -> None:
    from flows.console import evaluation_report_table
    from storage.evaluation_reports import EVALUATION_REPORTS, kept_evaluations, latest_evaluations

    store = load_config(config_path).store.open()
    unreadable: list[str] = []
    latest = latest_evaluations(kept_evaluations(store, unreadable=unreadable))
    if as_json:
        typer.echo(json.dumps({"evaluations": latest, "unreadable": unreadable}, indent=1))
    elif latest:
        console.print(evaluation_report_table(latest))
    else:
        console.print(f"no evaluation kept in {store.url_of(EVALUATION_REPORTS)} yet: run evaluate-im2sp")
    if unreadable:  # the runs above still stand; a damaged kept report must not pass unseen
        names = ", ".join(unreadable)
        error_console.print(f"[red]{len(unreadable)} kept evaluation report(s) unreadable[/red]: {names}")
        raise typer.Exit(code=1)


@report_app.command("evaluation")
def report_evaluation(
    config: ConfigOption, as_json: Annotated[bool, typer.Option("--json", help="Print the JSON contract.")] = False
) -> None:
    """Show the newest kept evaluate-im2sp run of each dataset and model: its rows' metrics and WER."""
    with reported():
        _print_evaluations(config, as_json=as_json)


@codebook_app.command("import-kmeans")
def import_kmeans_command(
    path: Annotated[Path, typer.Argument(help="A GSLM/fairseq km.bin (pickled scikit-learn k-means).")],
    config: ConfigOption,
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Allow unpickling: it runs code from the file.")
    ] = False,
) -> None:
    """Make a k-means trained elsewhere the current speech codebook (for the config's feature extractor)."""
    from flows.plans import extractor_ref
    from tasks.models import extractor_for
    from tasks.speech_codebook import import_kmeans

    with reported(path):
        loaded = load_config(config)
        store = loaded.store.open()
        extractor = extractor_for(extractor_ref(loaded))
        ref = import_kmeans(store, path, extractor.fingerprint, trust_pickle=trust_pickle)
    console.print(f"speech codebook {ref.codebook_id} (K={ref.clusters}, dim {ref.dim}) at {ref.url}")


def main() -> None:
    """Entry point of the ``im2sp`` console script."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # The ephemeral API server's 20 s default start-up limit is too short on a busy 2-core machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    app()

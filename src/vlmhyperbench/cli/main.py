"""``vlmhb``: validate an experiment, and make demo data and tiny models outside Snakemake."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vlmhyperbench.cli.profile import profile_app
from vlmhyperbench.config import ConfigError, Experiment, load_experiment
from vlmhyperbench.pipeline.backend_specs import preflight_problems

app = typer.Typer(help="VLMHyperBench command line.", no_args_is_help=True)
dataset_app = typer.Typer(help="Datasets.", no_args_is_help=True)
model_app = typer.Typer(help="Models.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")
app.add_typer(model_app, name="model")
app.add_typer(profile_app, name="profile")
console = Console()


@app.command()
def validate(
    config: Annotated[Path, typer.Option(help="Experiment config.")] = Path("config/config.yaml"),
) -> None:
    """Validate the config and every registry entry; print the tasks and the run matrix."""
    try:
        experiment = load_experiment(config_path=config)
    except ConfigError as error:
        # escape(): messages quote values such as [[x0, y0]] that rich would take for markup.
        console.print(f"[red]invalid configuration[/red]\n{escape(str(error))}", soft_wrap=True)
        raise typer.Exit(1) from None
    table = Table(title=f"experiment {experiment.config.name}")
    for column in ("task", "kind", "dataset", "metrics"):
        table.add_column(column)
    for name, task in experiment.tasks.items():
        table.add_row(name, task.kind, task.dataset, ", ".join(task.metrics))
    console.print(table)
    console.print(matrix_table(experiment))
    for sweep in experiment.sweeps:
        axes = " × ".join(f"{path} ({len(labels)})" for path, labels in sweep["axes"].items())
        console.print(f"{sweep['block']}: {sweep['base']} swept over {escape(axes)}")
    servers = experiment.servers
    console.print(f"{len(servers)} server(s): {escape(', '.join(servers))}", soft_wrap=True)
    perf_pairs = [f"{model}/{task}" for model, task in experiment.perf_pairs()]
    if perf_pairs:
        listed = escape(", ".join(perf_pairs))
        console.print(f"{len(perf_pairs)} load-tested pair(s) (perf): {listed}", soft_wrap=True)
    for problem in preflight_problems(list(servers.values())):
        console.print(
            f"[yellow]this machine cannot run it yet[/yellow]: {escape(problem)}", soft_wrap=True
        )


def matrix_table(experiment: Experiment) -> Table:
    """Models and their sweeps' variants (rows) × tasks (columns): ✓ where the pair runs (with
    its limit, and the block that listed it when there are several), · where it does not; a
    variant served by another's server names it."""
    blocks = {pair.block for pair in experiment.pairs}
    table = Table(title=f"run matrix: {len(experiment.pairs)} (model, task) pairs")
    table.add_column("model (backend)")
    for task in experiment.tasks:
        table.add_column(task, justify="center")
    for name, model in experiment.models.items():
        cells = []
        for task in experiment.tasks:
            try:
                pair = experiment.pair(name, task)
            except KeyError:
                cells.append("·")
                continue
            cell = "✓"
            if pair.task_entry.limit is not None:
                cell += f" ≤{pair.task_entry.limit}"
            if len(blocks) > 1:
                cell += f" {pair.block.rstrip('.') or 'models×tasks'}"
            cells.append(cell)
        server = experiment.server_of(name)
        shared = f", server {server}" if server not in (None, name) else ""
        table.add_row(escape(f"{name} ({model.backend}{shared})"), *cells)
    return table


@dataset_app.command("demo")
def dataset_demo(
    out_dir: Path,
    kind: Annotated[str, typer.Option(help="vqa | classification | ocr")] = "vqa",
    seed: int = 0,
    per_class: int = 2,
) -> None:
    """Render the synthetic Russian demo documents into OUT_DIR (manifest format)."""
    from vlmhyperbench.datasets.demo import generate_demo_dataset

    samples = generate_demo_dataset(
        out_dir, kind=kind, name=out_dir.name, seed=seed, per_class=per_class
    )
    console.print(f"wrote {len(samples)} samples to {out_dir}")


@dataset_app.command("push")
def dataset_push(
    dataset_dir: Annotated[Path, typer.Argument(help="A manifest-format dataset folder.")],
    uri: Annotated[str, typer.Argument(help="Versioned S3 prefix, e.g. s3://bucket/ds/name/v1")],
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing version (stale local copies!).")
    ] = False,
) -> None:
    """Upload a dataset to S3 under an immutable versioned key (refuses to overwrite one).

    Endpoint and credentials come from SNAKEMAKE_STORAGE_S3_* (or AWS_*) variables."""
    from vlmhyperbench.runtime.s3 import S3Settings, push_dataset

    try:
        keys = push_dataset(dataset_dir, uri, S3Settings.from_env().client(), overwrite=overwrite)
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        console.print(f"[red]{error}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"uploaded {len(keys)} files to {uri}")
    console.print(f"registry entry: source: {{type: s3, uri: {uri}}}")


@dataset_app.command("import")
def dataset_import(
    format: Annotated[
        str,
        typer.Argument(
            help="vqa_csv | field_json | class_folders | multipage | hf_disk | mws_vision"
        ),
    ],
    source: Annotated[Path, typer.Argument(help="The folder (or annotation file) to import.")],
    out_dir: Annotated[Path, typer.Argument(help="Where the manifest-format dataset goes.")],
    name: Annotated[
        str | None, typer.Option(help="Dataset name (default: OUT_DIR's name).")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Importer option KEY=VALUE (YAML value); repeatable."),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(
            help="vqa_csv: the CSV's encoding, e.g. cp1251 (default: utf-8, else detected)."
        ),
    ] = None,
) -> None:
    """Convert a dataset in another layout into the manifest format (all or nothing)."""
    import yaml

    from vlmhyperbench.datasets.importers import DatasetImportError, import_dataset

    options = {"encoding": encoding} if encoding else {}
    for item in option or []:
        key, sep, value = item.partition("=")
        if not sep:
            console.print(f"[red]--option {item!r}: expected KEY=VALUE[/red]")
            raise typer.Exit(2)
        options[key.strip()] = yaml.safe_load(value)
    try:
        samples, report = import_dataset(
            format, source, out_dir, name=name or out_dir.name, options=options
        )
    except DatasetImportError as error:
        console.print(f"[red]import failed[/red]: {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"imported {len(samples)} samples into {out_dir}")
    for sample_id, path in report.missing_images.items():
        console.print(
            f"[yellow]missing image[/yellow] for sample {sample_id}: {path}", soft_wrap=True
        )
    for warning in report.warnings:
        if "image not found" not in warning:
            console.print(f"[yellow]warning[/yellow]: {warning}", soft_wrap=True)


@app.command("import-runs")
def import_runs(
    csv: Annotated[Path, typer.Argument(help="The original run matrix, user_config.csv.")],
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="The original data_dirs (Datasets/, PromptCollections/, SystemPrompts/); "
            "default: vlmhyperbench/data_dirs beside CSV."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where config.yaml and its registry (datasets/, tasks/, models/, metrics/) "
            "go; default: imported/<CSV name>."
        ),
    ] = None,
    registry: Annotated[
        Path, typer.Option(help="The registry the models and metrics are taken from.")
    ] = Path("config"),
    force: Annotated[bool, typer.Option(help="Replace files that exist with other content.")] = (
        False
    ),
) -> None:
    """Turn an original VLMHyperBench user_config.csv into an experiment config (all or nothing).

    Paths in the written files are relative to this folder (run the pipeline from here)
    where they were given relative."""
    from vlmhyperbench.config.import_runs import ImportRunsError
    from vlmhyperbench.config.import_runs import import_runs as run_import

    try:
        plan, written = run_import(csv, data_dir, out, registry, force=force)
    except ImportRunsError as error:
        console.print(f"[red]import refused[/red]\n{escape(str(error))}", soft_wrap=True)
        raise typer.Exit(1) from None
    table = Table(title=f"{csv.name}: {len(plan.pairs)} (model, task) pairs")
    for column in ("line", "model", "task"):
        table.add_column(column)
    for line, model, task in plan.pairs:
        table.add_row(str(line), model, task)
    console.print(table)
    for note in plan.notes:
        console.print(f"[yellow]note[/yellow]: {escape(note)}", soft_wrap=True)
    for path, status in written:
        console.print(f"{status:>9} {escape(str(path))}", soft_wrap=True, highlight=False)
    console.print(f"check it: vlmhb validate --config {escape(str(plan.config_path))}")


@model_app.command("build-tiny")
def model_build_tiny(
    out_dir: Path,
    arch: Annotated[str, typer.Option(help="llava | idefics3")] = "llava",
    seed: int = 0,
) -> None:
    """Build a tiny random-weight VLM folder (loads like a real checkpoint)."""
    from vlmhyperbench.models.tiny import build_tiny_model

    console.print(f"built {build_tiny_model(out_dir, arch=arch, seed=seed)}")


@app.command()
def report(
    results: Annotated[Path, typer.Argument(help="A results folder (summary, scores, ...).")],
    out: Annotated[Path, typer.Argument(help="Where the report goes (e.g. results/report).")],
    baseline: Annotated[
        Path | None, typer.Option(help="Another run's results folder to compare against.")
    ] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap and permutation resamples.")] = 1000,
    seed: int = 0,
) -> None:
    """Build the report from RESULTS alone into OUT (byte-identical for the same RESULTS)."""
    from vlmhyperbench.reporting.build import build_report
    from vlmhyperbench.reporting.results import NotAResultsFolder

    try:
        built = build_report(results, out, baseline_dir=baseline, n_boot=n_boot, seed=seed)
    except NotAResultsFolder as error:
        console.print(f"[red]{error}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    for warning in built.warnings:
        console.print(f"[yellow]gap[/yellow]: {warning}", soft_wrap=True, highlight=False)
    console.print(f"wrote {len(built.files)} files into {out} ({out / 'index.html'})")


@app.command()
def view(
    results: Annotated[Path, typer.Argument(help="A results folder (summary, scores, ...).")],
    baseline: Annotated[
        Path | None, typer.Option(help="Another run's results folder: per-sample run diff.")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind (other than loopback: warned).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    data: Annotated[
        list[Path] | None,
        typer.Option(
            help="Folder holding the datasets (DATA/NAME/manifest.jsonl); repeatable. "
            "Default: data/ beside RESULTS."
        ),
    ] = None,
    export: Annotated[
        Path | None, typer.Option(help="Write one self-contained page of --task to this file.")
    ] = None,
    task: Annotated[str | None, typer.Option(help="The task to export.")] = None,
    filter_query: Annotated[
        str,
        typer.Option(
            "--filter",
            help="The export's filter: a task page's query string, "
            "e.g. 'right=a&wrong=b&q=date&sort=disagreement'.",
        ),
    ] = "",
    limit: Annotated[int, typer.Option(help="Samples on the exported page at most.")] = 500,
    n_boot: Annotated[int, typer.Option(help="Resamples of the run diff's CIs.")] = 1000,
    seed: int = 0,
) -> None:
    """Explore RESULTS in a browser (read-only): tasks × models, every sample with its page
    image and every model's answer, filters, and with --baseline the per-sample run diff."""
    from vlmhyperbench.explorer.export import write_export
    from vlmhyperbench.explorer.serve import bind_warning, serve
    from vlmhyperbench.explorer.session import open_explorer
    from vlmhyperbench.reporting.results import NotAResultsFolder

    try:
        explorer = open_explorer(
            results, baseline=baseline, data_dirs=data, n_boot=n_boot, seed=seed
        )
    except NotAResultsFolder as error:
        console.print(f"[red]{escape(str(error))}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    for warning in explorer.run.warnings:
        console.print(f"[yellow]warning[/yellow]: {escape(warning)}", soft_wrap=True)
    try:
        if export is not None:
            if task is None:
                console.print("[red]--export needs --task[/red]")
                raise typer.Exit(2)
            try:
                count = write_export(explorer, export, task, filter_query, limit)
            except (ValueError, KeyError) as error:
                console.print(f"[red]{escape(str(error))}[/red]", soft_wrap=True)
                raise typer.Exit(1) from None
            console.print(f"wrote {export} ({count} samples)")
            return
        warning = bind_warning(host, port)
        if warning:
            console.print(f"[yellow]warning[/yellow]: {escape(warning)}", soft_wrap=True)
        shown = f"[{host}]" if ":" in host else host
        console.print(f"serving {results} on http://{shown}:{port}/ (Ctrl-C stops)")
        serve(explorer, host, port)
    finally:
        explorer.close()

"""``vlmhb``: validate an experiment, and make demo data and tiny models outside Snakemake."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vlmhyperbench.config import ConfigError, load_experiment

app = typer.Typer(help="VLMHyperBench command line.", no_args_is_help=True)
dataset_app = typer.Typer(help="Datasets.", no_args_is_help=True)
model_app = typer.Typer(help="Models.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")
app.add_typer(model_app, name="model")
console = Console()


@app.command()
def validate(
    config: Annotated[Path, typer.Option(help="Experiment config.")] = Path("config/config.yaml"),
) -> None:
    """Validate the config and every registry entry; print the models × tasks × metrics plan."""
    try:
        experiment = load_experiment(config_path=config)
    except ConfigError as error:
        console.print(f"[red]invalid configuration[/red]\n{error}", soft_wrap=True)
        raise typer.Exit(1) from None
    table = Table(title=f"experiment {experiment.config.name}")
    for column in ("task", "kind", "dataset", "metrics"):
        table.add_column(column)
    for name, task in experiment.tasks.items():
        table.add_row(name, task.kind, task.dataset, ", ".join(task.metrics))
    console.print(table)
    console.print(
        "models: " + ", ".join(f"{n} ({m.backend})" for n, m in experiment.models.items())
    )


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


@model_app.command("build-tiny")
def model_build_tiny(
    out_dir: Path,
    arch: Annotated[str, typer.Option(help="llava | idefics3")] = "llava",
    seed: int = 0,
) -> None:
    """Build a tiny random-weight VLM folder (loads like a real checkpoint)."""
    from vlmhyperbench.models.tiny import build_tiny_model

    console.print(f"built {build_tiny_model(out_dir, arch=arch, seed=seed)}")


if __name__ == "__main__":
    app()

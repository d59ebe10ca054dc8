rule variants:
    """Each model of the run with its base entry, server and settings, and the sweeps' axes
    (a function of the config: the report groups variants under their base models by it).
    """
    output:
        variants=PLAN.variants_json,
    log:
        "logs/variants.log",
    conda:
        "../envs/evaluation.yaml"
    container:
        IMAGES["base-cpu"]
    params:
        document=get_variants_document,
    script:
        "../scripts/variants.py"


rule summarize:
    """Collect every score into one long table (model, task, metric, group, value, CI, n)."""
    input:
        scores=PLAN.all_scores("json"),
    output:
        parquet=PLAN.summary_parquet,
        csv=PLAN.summary_csv,
    log:
        "logs/summarize.log",
    conda:
        "../envs/evaluation.yaml"
    container:
        IMAGES["base-cpu"]
    script:
        "../scripts/summarize.py"


rule report:
    """The report, a function of results/ alone: index.html (leaderboards with CIs, paired model
    comparisons, robustness, performance, errors, provenance), LaTeX tables, SVG/PDF figures,
    comparisons.csv, provenance.json and the Markdown leaderboard."""
    input:
        summary=PLAN.summary_parquet,
        variants=PLAN.variants_json,
        scores=PLAN.all_scores("parquet"),
        predictions=PLAN.all_predictions(),
        perf=PLAN.all_perf(),
    output:
        index=report(
            PLAN.report_index,
            category="Report",
            labels={"file": "index.html"},
            caption="../workflow/report/index.rst",
        ),
        leaderboard=report(
            PLAN.leaderboard,
            category="Tables",
            subcategory="Leaderboard",
            labels={"file": "leaderboard.md"},
            caption="../workflow/report/leaderboard.rst",
        ),
        comparisons=report(
            PLAN.report_comparisons,
            category="Tables",
            subcategory="Model comparisons",
            labels={"file": "comparisons.csv"},
            caption="../workflow/report/comparisons.rst",
        ),
        provenance=report(
            PLAN.report_provenance,
            category="Provenance",
            labels={"file": "provenance.json"},
            caption="../workflow/report/provenance.rst",
        ),
        tables=report(
            directory(PLAN.report_tables),
            patterns=["{name}.tex"],
            category="Tables",
            subcategory="LaTeX",
            labels={"table": "{name}"},
            caption="../workflow/report/tables.rst",
        ),
        figures=report(
            directory(PLAN.report_figures),
            patterns=["{name}.svg"],
            category="Figures",
            labels={"figure": "{name}"},
            caption="../workflow/report/figures.rst",
        ),
    log:
        "logs/report.log",
    conda:
        "../envs/evaluation.yaml"
    container:
        IMAGES["base-cpu"]
    params:
        n_boot=PLAN.experiment.config.scoring.bootstrap,
        seed=PLAN.experiment.config.scoring.seed,
    script:
        "../scripts/report.py"

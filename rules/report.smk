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
    """The Markdown leaderboard: models × tasks × metrics with CIs, n and performance."""
    input:
        summary=PLAN.summary_parquet,
        predictions=PLAN.all_predictions(),
    output:
        leaderboard=PLAN.leaderboard,
    log:
        "logs/report.log",
    conda:
        "../envs/evaluation.yaml"
    container:
        IMAGES["base-cpu"]
    script:
        "../scripts/report.py"

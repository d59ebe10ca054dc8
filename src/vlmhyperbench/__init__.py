"""VLMHyperBench: a declarative Snakemake benchmark for vision-language models."""

__version__ = "0.1.0"

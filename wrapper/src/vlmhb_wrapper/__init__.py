"""VLMHyperBench Inference API Wrapper: an OpenAI-compatible server with per-request telemetry.

This distribution (``vlmhyperbench-wrapper``) is deliberately independent of ``vlmhyperbench``:
it runs inside model containers, where only the wrapper and its backend's runtime are installed.
Modules that import ``torch``/``transformers`` live under :mod:`vlmhb_wrapper.backends.hf` only.
"""

__version__ = "0.2.0"

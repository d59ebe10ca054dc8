"""Two tiny metrics offered to VLMHyperBench through the ``vlmhyperbench.metrics`` entry points."""

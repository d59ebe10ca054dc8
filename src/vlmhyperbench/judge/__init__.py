"""A model as judge: a judge model grades each prediction; its replies become verdicts."""

"""Model helpers. :mod:`vlmhyperbench.models.tiny` builds tiny random-weight VLMs offline.

Kept import-light on purpose: ``torch``/``transformers`` are only imported by the submodules.
"""

"""The ``vlmhb`` command line: ``main`` (validate, report, dataset, tiny models), ``profile``."""

from vlmhyperbench.cli.main import app

__all__ = ["app"]

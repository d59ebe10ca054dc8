"""``python -m vlmhyperbench.cli``."""

from vlmhyperbench.cli.main import app

app()

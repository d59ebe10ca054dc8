"""Reporting: the long summary table, the performance table and the Markdown leaderboard."""

from vlmhyperbench.reporting.leaderboard import (
    performance_table,
    render_leaderboard,
    write_leaderboard,
)
from vlmhyperbench.reporting.summary import build_summary, write_summary

__all__ = [
    "build_summary",
    "performance_table",
    "render_leaderboard",
    "write_leaderboard",
    "write_summary",
]

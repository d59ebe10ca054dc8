"""Serve an explorer session with uvicorn: on 127.0.0.1 unless told otherwise, with a warning
when bound anywhere else (the results and the dataset images are then readable by anyone who
can reach the port)."""

from __future__ import annotations

import ipaddress

import uvicorn

from vlmhyperbench.explorer.app import create_app
from vlmhyperbench.explorer.session import Explorer

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_warning(host: str, port: int) -> str | None:
    """What to tell the user before binding ``host`` (None for a loopback address)."""
    if is_loopback(host):
        return None
    return (
        f"binding {host}:{port}, not 127.0.0.1: anyone who can reach this machine on port "
        f"{port} can read these results and their dataset images (no authentication)"
    )


def serve(explorer: Explorer, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Run the app until interrupted."""
    # Starlette's host check cannot read an IPv6 Host header ("[::1]:8765"): IPv4 loopback only.
    app = create_app(explorer, loopback_only=is_loopback(host) and ":" not in host)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)

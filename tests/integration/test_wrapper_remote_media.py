"""Remote images through the real wrapper, called with the official openai client (issue 24,
point 7): with ``--allow-remote-media`` a loopback image server is refused however its address
is written, and reached only when ``--allow-private-media-hosts`` names it; a redirect from
an allowed server to a refused host is refused; a fetch that fails says so without any
socket-level detail. Every address used is on loopback, and the image server counts the
requests it gets: a refusal must come before any connection.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.http_server import QuietHandler, loopback_http_server

openai = pytest.importorskip("openai")
pytest.importorskip("torch")

from PIL import Image  # noqa: E402

pytestmark = pytest.mark.slow


@dataclass
class ImageSite:
    """A loopback image server: its port and the paths it was asked for."""

    port: int
    requests: list[str]


@pytest.fixture(scope="module")
def image_site() -> Iterator[ImageSite]:
    buf = io.BytesIO()
    Image.new("RGB", (30, 20), "green").save(buf, format="PNG")
    png = buf.getvalue()
    requests: list[str] = []

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            if self.path.startswith("/to/"):  # /to/<host> redirects to <host>:<port>/ok.png
                self.redirect(f"http://{self.path[4:]}:{port}/ok.png")
            elif self.path == "/here":
                self.redirect("/ok.png", status=301)
            elif self.path == "/ok.png":
                self.send_body(200, png, "image/png")
            else:
                self.send_error(404)

    with loopback_http_server(Handler) as port:
        yield ImageSite(port, requests)


def _start(start_wrapper: Any, model_dir: Path, *extra: str) -> Any:
    return start_wrapper(
        "--backend", "hf", "--model", str(model_dir), "--threads", "1", "--allow-remote-media",
        *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def public_only(start_wrapper: Any, tiny_model_dirs: dict[str, Path]) -> Any:
    return _start(start_wrapper, tiny_model_dirs["llava"])


@pytest.fixture(scope="module")
def loopback_allowed(start_wrapper: Any, tiny_model_dirs: dict[str, Path]) -> Any:
    return _start(
        start_wrapper, tiny_model_dirs["llava"], "--allow-private-media-hosts", "127.0.0.1"
    )


def _ask(server: Any, url: str) -> Any:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "text", "text": "Что это?"},
            ],
        }
    ]
    with server.client() as client:
        return client.chat.completions.create(model=server.name, messages=messages, max_tokens=2)


def _refused(server: Any, url: str) -> dict:
    with pytest.raises(openai.BadRequestError) as err:
        _ask(server, url)
    return err.value.body


def test_loopback_is_refused_however_written(public_only: Any, image_site: ImageSite) -> None:
    port = image_site.port
    spellings = [
        f"http://127.0.0.1:{port}/ok.png",
        f"http://localhost:{port}/ok.png",
        f"http://LOCALHOST:{port}/ok.png",
        f"http://[::1]:{port}/ok.png",
        f"http://[::ffff:127.0.0.1]:{port}/ok.png",
        f"http://2130706433:{port}/ok.png",
        f"http://0x7f.1:{port}/ok.png",
        f"http://127.1:{port}/ok.png",
        f"http://a@127.0.0.1:{port}/ok.png",
        f"http://user:pass@localhost:{port}/ok.png",
        f"http://127.0.0.1:{port}/to/127.0.0.1",
    ]
    for url in spellings:
        body = _refused(public_only, url)
        assert body["code"] == "image_url_not_allowed", (url, body)
        assert body["message"] == f"image URL not allowed: {url}"
    assert image_site.requests == []  # refused before connecting, every time


def test_a_named_private_host_is_fetched_and_redirects_are_checked(
    loopback_allowed: Any, image_site: ImageSite
) -> None:
    port = image_site.port
    image_site.requests.clear()
    for url in (f"http://127.0.0.1:{port}/ok.png", f"http://127.1:{port}/here"):
        assert _ask(loopback_allowed, url).usage.completion_tokens >= 1
    assert image_site.requests == ["/ok.png", "/here", "/ok.png"]
    # 127.0.0.1 is allowed, not all of loopback: a redirect elsewhere is refused at that hop.
    for host in ("127.0.0.2", "[::1]", "[::ffff:127.0.0.1]"):
        image_site.requests.clear()
        url = f"http://127.0.0.1:{port}/to/{host}"
        body = _refused(loopback_allowed, url)
        assert (body["code"], body["message"]) == (
            "image_url_not_allowed",
            f"image URL not allowed: {url}",
        )
        assert image_site.requests == [f"/to/{host}"]


def test_a_failed_fetch_gives_no_socket_detail(
    loopback_allowed: Any, image_site: ImageSite
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    url = f"http://127.0.0.1:{closed}/ok.png"
    body = _refused(loopback_allowed, url)
    assert (body["code"], body["message"]) == (
        "image_url_fetch_failed",
        f"could not fetch image URL: {url}",
    )
    missing = f"http://127.0.0.1:{image_site.port}/missing.png"
    assert _refused(loopback_allowed, missing)["message"] == (
        f"could not fetch image URL: {missing} (HTTP 404)"
    )
    # The operator's log has the cause; the client never does.
    assert "could not fetch image URL" in loopback_allowed.log(tail=10**6)

"""Safe defaults of the wrapper, checked against a real server process.

API key (missing/wrong -> 401, Bearer and X-API-Key accepted), file:// confinement (no
/etc/passwd, no ``..``, no symlink out of the root), size limits (request body, image bytes,
image pixels: a decompression bomb is refused without being decoded), remote images off by
default (and bounded when enabled), secrets never in the log, loopback bind by default.
"""

from __future__ import annotations

import base64
import io
import os
import secrets
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http_server import QuietHandler, loopback_http_server

openai = pytest.importorskip("openai")
pytest.importorskip("torch")
psutil = pytest.importorskip("psutil")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from vlmhb_wrapper.app import create_app  # noqa: E402
from vlmhb_wrapper.backends.base import BackendConfig  # noqa: E402
from vlmhb_wrapper.backends.hf import HFBackend  # noqa: E402
from vlmhb_wrapper.media import MediaLimits, MediaLoader  # noqa: E402

pytestmark = pytest.mark.slow

API_KEY = "sk-vlmhb-" + secrets.token_hex(16)
MAX_REQUEST = 1_000_000
MAX_IMAGE = 200_000


def _png(size: tuple[int, int] = (48, 32), color: str = "white") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def _noise_png(side: int) -> bytes:
    """A PNG that does not compress (random pixels): its size is about side*side*3 bytes."""
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, format="PNG")
    return buf.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A *real* decompression bomb: a valid 1-bit PNG of width x height zero pixels whose
    compressed data is tiny (decoded, Pillow would need width*height bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _messages(url: str) -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "text", "text": "Что это?"},
            ],
        }
    ]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("media")
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (root / "doc.png").write_bytes(_png())
    (root / "sub" / "page.png").write_bytes(_png((40, 40), "yellow"))
    (root / "big.png").write_bytes(_noise_png(300))
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(_png((20, 20), "red"))
    (root / "escape.png").symlink_to(outside / "secret.png")
    (root / "inner-link.png").symlink_to(root / "sub" / "page.png")
    (root / "dir-escape").symlink_to(outside, target_is_directory=True)
    return {"root": root, "outside": outside}


@pytest.fixture(scope="module")
def server(start_wrapper: Any, tiny_model_dirs: dict[str, Path], media: dict[str, Path]) -> Any:
    # No --host: the default bind is checked below.
    return start_wrapper(
        "--backend", "hf", "--model", str(tiny_model_dirs["llava"]), "--threads", "1",
        "--api-key-env", "VLMHB_TEST_WRAPPER_KEY", "--allowed-media-root", str(media["root"]),
        "--max-request-bytes", str(MAX_REQUEST), "--max-image-bytes", str(MAX_IMAGE),
        "--max-image-pixels", "1000000",
        env={"VLMHB_TEST_WRAPPER_KEY": API_KEY},
        api_key=API_KEY,
    )  # fmt: skip


def _post(server: Any, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/v1/chat/completions", json=body, headers=headers or {}, timeout=60
    )


def test_api_key_is_required_on_v1_routes(server: Any) -> None:
    body = {"model": server.name, "messages": [{"role": "user", "content": "a"}], "max_tokens": 2}
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": API_KEY},  # no scheme
        {"Authorization": f"Basic {API_KEY}"},
        {"X-API-Key": "wrong"},
        {"X-API-Key": API_KEY[:-1]},
    ):
        response = _post(server, body, headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "invalid_api_key"
    # Authentication comes before validation: a bad body without a key is still a 401.
    assert _post(server, {"nonsense": True}).status_code == 401
    assert httpx.get(f"{server.base_url}/v1/models").status_code == 401
    with server.client(api_key="wrong") as client, pytest.raises(openai.AuthenticationError):
        client.models.list()
    # Both accepted forms of the right key work; health and metrics stay open for probes.
    assert _post(server, body, {"X-API-Key": API_KEY}).status_code == 200
    with server.client() as client:  # the openai client sends Authorization: Bearer
        resp = client.chat.completions.create(**body)
        assert resp.usage.completion_tokens <= 2
    assert httpx.get(f"{server.base_url}/health").status_code == 200
    assert httpx.get(f"{server.base_url}/metrics").status_code == 200


def test_file_urls_are_confined_to_the_allowed_root(server: Any, media: dict[str, Path]) -> None:
    root, outside = media["root"], media["outside"]
    refused = [
        ("file:///etc/passwd", "outside the allowed media roots"),
        ((outside / "secret.png").as_uri(), "outside the allowed media roots"),
        (f"file://{root}/../outside/secret.png", "'..'"),
        (f"file://{root}/sub/%2e%2e/../outside/secret.png", "'..'"),
        ((root / "escape.png").as_uri(), "outside the allowed media roots"),
        (f"file://{root}/dir-escape/secret.png", "outside the allowed media roots"),
        ((root / "missing.png").as_uri(), "not found"),
        (f"file://evil.example.com{root}/doc.png", "local host"),
    ]
    with server.client() as client:
        for url, needle in refused:
            with pytest.raises(openai.BadRequestError) as err:
                client.chat.completions.create(
                    model=server.name, messages=_messages(url), max_tokens=2
                )
            assert needle in err.value.body["message"], (url, err.value.body)
        for ok in (root / "doc.png", root / "sub" / "page.png", root / "inner-link.png"):
            resp = client.chat.completions.create(
                model=server.name, messages=_messages(ok.as_uri()), max_tokens=2
            )
            assert resp.usage.completion_tokens >= 1


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_size_limits_and_decompression_bomb_are_413(server: Any, media: dict[str, Path]) -> None:
    bomb = _bomb_png(20_000, 20_000)  # 400 megapixels: ~400 MB decoded, ~50 kB here
    assert len(bomb) < MAX_IMAGE
    peak_before = _peak_rss_mb(server.process.pid)
    cases = [
        (_data_url(bomb), "image_too_large", "pixels"),
        (_data_url(_noise_png(300)), "image_too_large", "bytes"),
        ((media["root"] / "big.png").as_uri(), "image_too_large", "bytes"),
        (_data_url(_noise_png(600)), "request_too_large", "request body is too large"),
    ]
    with server.client() as client:
        for url, code, needle in cases:
            with pytest.raises(openai.APIStatusError) as err:
                client.chat.completions.create(
                    model=server.name, messages=_messages(url), max_tokens=2
                )
            assert err.value.status_code == 413, (code, err.value)
            assert err.value.body["code"] == code and needle in err.value.body["message"]
    # Refused from the header: the server never came near the bomb's decoded size.
    assert _peak_rss_mb(server.process.pid) - peak_before < 100
    # A body with a declared length over the limit is refused before it is read.
    response = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        content=b"x" * (MAX_REQUEST + 1),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_remote_images_are_off_by_default(server: Any) -> None:
    with server.client() as client, pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=server.name, messages=_messages("http://127.0.0.1:9/x.png"), max_tokens=2
        )
    assert err.value.body["code"] == "remote_media_disabled"


def test_secrets_never_reach_the_log(server: Any) -> None:
    # A key in a query string would be printed by the access log: it is redacted.
    response = httpx.get(
        f"{server.base_url}/v1/models",
        params={"api_key": API_KEY},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert response.status_code == 200
    with server.client() as client, pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model=API_KEY, messages=[{"role": "user", "content": "a"}], max_tokens=2
        )
    log = server.log(tail=10**7)
    assert "GET /v1/models?api_key=***" in log
    assert API_KEY not in log


def test_binds_loopback_by_default(server: Any) -> None:
    connections = psutil.Process(server.process.pid).net_connections(kind="inet")
    listening = {c.laddr.ip for c in connections if c.status == psutil.CONN_LISTEN}
    assert listening == {"127.0.0.1"}


# ----------------------------------------------------------------- remote fetching, enabled


@pytest.fixture(scope="module")
def image_site() -> Iterator[str]:
    files = {"/ok.png": _png((30, 30), "green"), "/big.png": _noise_png(300)}

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            data = files.get(self.path)
            if data is None:
                self.send_error(404)
            else:
                self.send_body(200, data, "image/png")

    with loopback_http_server(Handler) as port:
        yield f"http://127.0.0.1:{port}"


def test_remote_images_when_enabled_are_bounded(
    tiny_model_dirs: dict[str, Path], image_site: str
) -> None:
    backend = HFBackend(BackendConfig(model=str(tiny_model_dirs["llava"]), threads=1))
    loader = MediaLoader(
        limits=MediaLimits(max_image_bytes=MAX_IMAGE),
        allow_remote=True,
        allowed_private_hosts=["127.0.0.1"],  # the image site is on loopback
    )
    name = str(tiny_model_dirs["llava"])
    with TestClient(create_app(backend, media_loader=loader)) as client:
        while client.get("/health").status_code != 200:
            pass

        def post(url: str) -> httpx.Response:
            body = {"model": name, "messages": _messages(url), "max_tokens": 2}
            return client.post("/v1/chat/completions", json=body)

        assert post(f"{image_site}/ok.png").status_code == 200
        response = post(f"{image_site}/big.png")
        assert response.status_code == 413 and response.json()["error"]["code"] == "image_too_large"
        response = post(f"{image_site}/missing.png")
        assert response.status_code == 400 and "HTTP 404" in response.json()["error"]["message"]

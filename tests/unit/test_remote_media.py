"""Remote image fetching cannot reach private addresses (issue 24, point 7).

Name resolution here never leaves the process: ``socket.getaddrinfo`` is replaced by one that
answers a few test names from a table and reads everything else as a numeric address only
(``AI_NUMERICHOST``: the OS's own reading of ``2130706433``, ``0x7f.1``, ``127.1``, no DNS
query). Every connection attempt is recorded, and one to anything but loopback is refused
without a packet sent: the refusals below must happen before any connection at all.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from PIL import Image
from vlmhb_wrapper import remote_media
from vlmhb_wrapper.errors import InvalidRequestError
from vlmhb_wrapper.media import MediaLoader
from vlmhb_wrapper.remote_media import PrivateHosts, RemoteOpener, URLNotAllowed, is_public

from tests.http_server import QuietHandler, loopback_http_server


@dataclass
class Network:
    """The fake resolver's table, what it was asked, and the connections attempted."""

    names: dict[str, list[str]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)
    connects: list[str] = field(default_factory=list)


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Network:
    state = Network(
        names={
            "localhost": ["127.0.0.1", "::1"],
            "metadata.test": ["169.254.169.254"],
            "intranet.test": ["10.1.2.3"],
            "mixed.test": ["93.184.215.14", "192.168.0.7"],
            "images.example.com": ["93.184.215.14"],
        }
    )
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.create_connection

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, *args: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        state.lookups.append(name)
        answers = state.names.get(name.lower().rstrip("."))
        if answers is None:
            return real_getaddrinfo(name, port, family, type, 0, socket.AI_NUMERICHOST)
        if callable(answers):
            answers = answers()
        return [_addrinfo(ip, int(port)) for ip in answers]

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        state.connects.append(address[0])
        if not _is_loopback_ip(address[0]):  # a public or private address, or a name
            raise ConnectionRefusedError(111, "Connection refused")  # nothing is sent
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    return state


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _addrinfo(ip: str, port: int) -> tuple:
    if ":" in ip:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))


@dataclass
class Site:
    """A loopback HTTP server: its port and the Host header of every request it got."""

    port: int
    hosts: list[str]


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (3, 2), "green").save(buf, format="PNG")
    return buf.getvalue()


PNG = _png()


@pytest.fixture
def site() -> Iterator[Site]:
    hosts: list[str] = []

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            hosts.append(self.headers["Host"])
            path, _, target = self.path.partition("?to=")
            if path == "/redirect":
                self.redirect(unquote(target).replace("PORT", str(port)))
            elif path == "/ok.png":
                self.send_body(200, PNG, "image/png")
            else:
                self.send_error(404)

    with loopback_http_server(Handler) as port:
        yield Site(port, hosts)


def _refusal(loader: MediaLoader, url: str) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as err:
        loader.load(url)
    return err.value


# ------------------------------------------------------------------- address classification

PRIVATE_SPELLINGS = [
    "http://127.0.0.1/x.png",
    "http://2130706433/x.png",  # decimal
    "http://017700000001/x.png",  # octal
    "http://0177.0.0.1/x.png",
    "http://0x7f000001/x.png",  # hex
    "http://0x7f.1/x.png",
    "http://127.1/x.png",  # short
    "http://127.0.0.2:8080/x.png",
    "http://[::1]/x.png",
    "http://[::ffff:127.0.0.1]/x.png",  # IPv4-mapped
    "http://[::ffff:7f00:1]/x.png",
    "http://[0:0:0:0:0:ffff:a9fe:a9fe]/latest/meta-data/",
    "http://[2002:7f00:1::1]/x.png",  # 6to4 around 127.0.0.1
    "http://[2002:a9fe:a9fe::1]/x.png",  # 6to4 around 169.254.169.254
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/x.png",  # Teredo, client 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/x.png",  # NAT64 around 169.254.169.254
    "http://localhost/x.png",
    "http://LOCALHOST/x.png",
    "http://localhost./x.png",
    "http://LocalHost.:80/x.png",
    "http://a@127.0.0.1/x.png",  # userinfo
    "http://user:pass@localhost:8080/x.png",
    "http://images.example.com@127.0.0.1/x.png",
    "https://127.0.0.1/x.png",
    "http://0/x.png",  # unspecified
    "http://0.0.0.0/x.png",
    "http://[::]/x.png",
    "http://10.0.0.1/x.png",  # private
    "http://172.16.5.4/x.png",
    "http://192.168.1.1/x.png",
    "http://[fc00::1]/x.png",
    "http://100.64.0.1/x.png",  # shared (carrier-grade NAT)
    "http://169.254.169.254/latest/meta-data/",  # link-local: a cloud's metadata service
    "http://[fe80::1]/x.png",
    "http://224.0.0.1/x.png",  # multicast
    "http://[ff02::1]/x.png",
    "http://240.0.0.1/x.png",  # reserved
    "http://255.255.255.255/x.png",
    "http://metadata.test/latest/meta-data/",  # names resolving to private addresses
    "http://intranet.test/x.png",
    "http://INTRANET.test./x.png",
    "http://mixed.test/x.png",  # one public and one private answer
]


@pytest.mark.parametrize("url", PRIVATE_SPELLINGS)
def test_private_addresses_are_refused_however_written(network: Network, url: str) -> None:
    error = _refusal(MediaLoader(allow_remote=True), url)
    assert error.status_code == 400 and error.code == "image_url_not_allowed"
    assert str(error) == f"image URL not allowed: {url}"
    assert network.connects == [], "refused only after connecting"


PUBLIC_ADDRESSES = [
    "93.184.215.14",
    "8.8.8.8",
    "2606:2800:220:1:248:1893:25c8:1946",
    "2002:808:808::1",  # 6to4 around a public address
]


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_public_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_the_allow_list_names_hosts_addresses_and_networks() -> None:
    allowed = PrivateHosts.parse(["127.0.0.1", "MinIO.internal.,10.0.0.0/8", "[::1]"])
    loopback, other_loopback = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("127.0.0.2")
    assert allowed.allows("2130706433", loopback)  # an address, however the URL writes it
    assert not allowed.allows("127.0.0.2", other_loopback)
    assert allowed.allows("minio.internal", ipaddress.ip_address("192.168.7.7"))  # by name
    assert allowed.allows("MINIO.INTERNAL.", ipaddress.ip_address("192.168.7.7"))
    assert not allowed.allows("other.internal", ipaddress.ip_address("192.168.7.7"))
    assert allowed.allows("x", ipaddress.ip_address("10.200.0.1"))
    assert allowed.allows("x", ipaddress.ip_address("::1"))
    assert not allowed.allows("x", ipaddress.ip_address("169.254.169.254"))
    for bad in ("", "http://x", "a b", "10.0.0.0/8,"):
        with pytest.raises(ValueError, match="not a host name"):
            PrivateHosts.parse([bad])


# ------------------------------------------------------------ allowed hosts, redirects, pinning


def test_an_allowed_private_host_is_fetched(network: Network, site: Site) -> None:
    loader = MediaLoader(allow_remote=True, allowed_private_hosts=["127.0.0.1"])
    for host in ("127.0.0.1", "127.1", "2130706433", "a@127.0.0.1"):
        segment = loader.load(f"http://{host}:{site.port}/ok.png", decode=False)
        assert (segment.width, segment.height) == (3, 2)
    sent_as = ("127.0.0.1", "127.1", "2130706433", "127.0.0.1")  # userinfo is not the host
    assert site.hosts == [f"{host}:{site.port}" for host in sent_as]
    # 127.0.0.1 is allowed, not every loopback address: localhost also answers ::1.
    url = f"http://localhost:{site.port}/ok.png"
    assert str(_refusal(loader, url)) == f"image URL not allowed: {url}"


def test_the_checked_address_is_the_one_connected_to(network: Network, site: Site) -> None:
    """DNS rebinding: the name answers an allowed address once, then another one. The fetch
    uses the first answer (one lookup of the name), and the server still sees the name."""
    answers = iter([["127.0.0.1"]])
    network.names["images.test"] = lambda: next(answers, ["127.0.0.2"])
    loader = MediaLoader(allow_remote=True, allowed_private_hosts=["127.0.0.1"])
    segment = loader.load(f"http://images.test:{site.port}/ok.png", decode=False)
    assert segment.width == 3
    assert network.lookups.count("images.test") == 1
    assert network.connects == ["127.0.0.1"]
    assert site.hosts == [f"images.test:{site.port}"]


def test_a_pinned_https_request_keeps_the_name_for_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    lookups: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[Any]:
        lookups.append((host, port))
        return [ipaddress.ip_address("10.9.8.7")]

    monkeypatch.setattr(remote_media, "resolve", resolve)
    opener = RemoteOpener(PrivateHosts.parse(["images.test"]))
    with httpx.Client() as client:  # the request is built, not sent
        request = opener._pinned_request(client, httpx.URL("https://IMAGES.test:8443/a.png"))
    assert lookups == [("images.test", 8443)]
    assert str(request.url) == "https://10.9.8.7:8443/a.png"
    assert request.headers["host"] == "images.test:8443"
    assert request.extensions["sni_hostname"] == "images.test"


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:PORT/ok.png",
        "http://[::1]:PORT/ok.png",
        "http://localhost:PORT/ok.png",
        "http://metadata.test/latest/meta-data/",
        "file:///etc/passwd",
    ],
)
def test_a_redirect_to_a_refused_host_is_refused(network: Network, site: Site, target: str) -> None:
    loader = MediaLoader(allow_remote=True, allowed_private_hosts=["127.0.0.1"])
    url = f"http://127.0.0.1:{site.port}/redirect?to={target}"
    error = _refusal(loader, url)
    assert (error.code, str(error)) == ("image_url_not_allowed", f"image URL not allowed: {url}")
    assert network.connects == ["127.0.0.1"]  # the redirecting server only
    assert len(site.hosts) == 1


def test_redirects_are_followed_each_hop_checked_and_bounded(network: Network, site: Site) -> None:
    loader = MediaLoader(allow_remote=True, allowed_private_hosts=["127.0.0.1"])
    base = f"http://127.0.0.1:{site.port}"
    assert loader.load(f"{base}/redirect?to=/ok.png", decode=False).width == 3
    assert len(site.hosts) == 2
    site.hosts.clear()
    path = "/"
    for _ in range(remote_media.MAX_REDIRECTS + 1):
        path = f"/redirect?to={path}"
    loop = base + path
    error = _refusal(loader, loop)
    assert (error.code, str(error)) == (
        "image_url_fetch_failed",
        f"could not fetch image URL: {loop}",
    )
    assert len(site.hosts) == remote_media.MAX_REDIRECTS + 1


# ------------------------------------------------------------------- no socket-level detail


def _assert_no_socket_detail(message: str) -> None:
    for detail in ("errno", "refused", "connect", "timed out", "resolve", "10.9.8.7", "93.184"):
        assert detail not in message.lower(), message


def test_fetch_failures_say_only_that_the_url_could_not_be_fetched(
    network: Network, site: Site
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    loader = MediaLoader(allow_remote=True, allowed_private_hosts=["127.0.0.1"])
    failing = [
        f"http://127.0.0.1:{closed}/ok.png",  # refused connection
        "http://images.example.com/ok.png",  # a public host that refuses (fake: nothing sent)
        "http://no-such-host.invalid/ok.png",  # does not resolve
    ]
    for url in failing:
        error = _refusal(loader, url)
        assert (error.code, str(error)) == (
            "image_url_fetch_failed",
            f"could not fetch image URL: {url}",
        )
        _assert_no_socket_detail(str(error).removesuffix(url))
    assert network.connects == ["127.0.0.1", "93.184.215.14"]
    missing = f"http://127.0.0.1:{site.port}/missing.png"
    assert str(_refusal(loader, missing)) == f"could not fetch image URL: {missing} (HTTP 404)"


def test_open_and_closed_ports_of_a_refused_host_look_the_same(
    network: Network, site: Site
) -> None:
    """No port scanning: the answer does not depend on what listens there."""
    loader = MediaLoader(allow_remote=True)
    for port in (site.port, 1):
        url = f"http://127.0.0.1:{port}/ok.png"
        assert str(_refusal(loader, url)) == f"image URL not allowed: {url}"
    assert site.hosts == [] and network.connects == []


def test_data_and_file_urls_are_untouched_by_the_remote_policy(
    network: Network, tmp_path: Path
) -> None:
    (tmp_path / "a.png").write_bytes(PNG)
    loader = MediaLoader(allowed_media_roots=[tmp_path], allow_remote=True)
    assert loader.load((tmp_path / "a.png").as_uri(), decode=False).width == 3
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert loader.load(data_url, decode=False).data_url == data_url
    assert network.lookups == [] and network.connects == []


def test_remote_media_stays_off_by_default(network: Network) -> None:
    error = _refusal(MediaLoader(), "http://93.184.215.14/x.png")
    assert error.code == "remote_media_disabled"
    assert network.lookups == [] and network.connects == []


def test_urls_that_cannot_be_parsed_are_not_allowed() -> None:
    opener = RemoteOpener()
    for url in ("http:///x.png", "http://[::1/x.png"):
        with pytest.raises(URLNotAllowed), opener.open(url):
            pass

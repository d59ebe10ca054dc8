"""Opening ``http(s)`` image URLs without letting a client reach private addresses (SSRF).

Each hop's host is resolved once, with the resolver the connection would use
(``socket.getaddrinfo``: it reads every spelling the way the OS does - decimal ``2130706433``,
hex ``0x7f.1``, short ``127.1``, IPv6 literals, names from ``/etc/hosts`` or DNS). Every
address it gives must be public - not loopback, private, link-local, multicast, reserved,
unspecified or otherwise not global, also when an IPv6 address carries an IPv4 one
(IPv4-mapped, 6to4, Teredo) - unless the host name or the address is named in the allow-list
(``--allow-private-media-hosts``). The connection then goes to the checked address itself:
the URL's host is replaced by it, while the ``Host`` header and TLS (SNI and the certificate
check) keep the name, so no second lookup can answer differently. Redirects are followed by
hand, each hop checked the same way, at most :data:`MAX_REDIRECTS`.

Callers get :class:`URLNotAllowed` for a refused URL, and ``httpx.HTTPError`` / ``OSError``
for one that could not be fetched; what they tell the client is theirs to word.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import httpx

__all__ = ["MAX_REDIRECTS", "PrivateHosts", "RemoteOpener", "URLNotAllowed", "is_public", "resolve"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class URLNotAllowed(Exception):
    """The URL, or a URL it redirects to, is not one this server may fetch."""


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (one lookup); ``OSError`` if it resolves to none."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` - and any IPv4 address embedded in it - is a public unicast one."""
    embedded: list[IPAddress] = []
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
        embedded += list(address.teredo or ())
    return all(_is_public_one(a) for a in (address, *embedded))


def _is_public_one(address: IPAddress) -> bool:
    return address.is_global and not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _host_name(host: str) -> str:
    return host.strip("[]").lower().rstrip(".")


@dataclass(frozen=True)
class PrivateHosts:
    """Hosts (by name) and addresses (IPs or CIDRs) that may be fetched although not public."""

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> PrivateHosts:
        """``["minio.internal", "10.0.0.0/8", "127.0.0.1,::1"]``: names, IPs and CIDRs, each
        entry possibly a comma-separated list. Raises ``ValueError`` for a malformed one."""
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (part.strip() for item in entries for part in item.split(",")):
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = _host_name(entry)
            if not name or any(c in name for c in "/:@ "):
                raise ValueError(f"not a host name, IP address or CIDR: {entry!r}")
            names.add(name)
        return cls(frozenset(names), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        return (
            is_public(address)
            or _host_name(host) in self.names
            or any(address in network for network in self.networks)
        )


@dataclass(frozen=True)
class RemoteOpener:
    """Opens image URLs under the address policy; one fresh connection per hop."""

    private_hosts: PrivateHosts = PrivateHosts()
    timeout_s: float = 10.0

    @contextlib.contextmanager
    def open(self, url: str) -> Iterator[httpx.Response]:
        """The final (non-redirect) response to ``GET url``, its body not yet read."""
        target = _parse(url)
        with httpx.Client(
            timeout=self.timeout_s,
            trust_env=False,  # no proxy from the environment: we connect to what we checked
            limits=httpx.Limits(max_keepalive_connections=0),  # a hop never reuses a connection
        ) as client:
            for _hop in range(MAX_REDIRECTS + 1):
                response = client.send(self._pinned_request(client, target), stream=True)
                location = response.headers.get("location")
                if response.status_code not in _REDIRECT_STATUSES or location is None:
                    with contextlib.closing(response):
                        yield response
                    return
                response.close()
                target = _parse(location, base=target)
        raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")

    def _pinned_request(self, client: httpx.Client, url: httpx.URL) -> httpx.Request:
        if url.scheme not in _DEFAULT_PORTS or not url.raw_host:
            raise URLNotAllowed(str(url))
        host = url.raw_host.decode("ascii")  # IDNA-encoded, as DNS and TLS want it
        addresses = resolve(host, url.port or _DEFAULT_PORTS[url.scheme])
        if not addresses or not all(self.private_hosts.allows(host, a) for a in addresses):
            raise URLNotAllowed(str(url))
        extensions = {} if _is_ip_literal(host) else {"sni_hostname": host}
        return client.build_request(
            "GET",
            url.copy_with(host=str(addresses[0])),
            headers={"Host": url.netloc.decode("ascii")},
            extensions=extensions,
        )


def _parse(url: str, base: httpx.URL | None = None) -> httpx.URL:
    try:
        return base.join(url) if base is not None else httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        raise URLNotAllowed(url) from None


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True

"""Requests to URLs a client named (Web Push endpoints) reach only public internet addresses.

A push endpoint is any URL a logged-in user registers, and the job worker POSTs to it: without
a check, anyone could make the worker send requests to loopback, the private network or a cloud
metadata service (server-side request forgery), and learn from what happens to the subscription
whether something answered there. Two checks, both off with
`notifications.push_private_addresses` (tests and a push service on the local network), which
still never reaches a link-local address (the metadata service) or the unspecified one:

- on registering, an endpoint whose host is `localhost` or an IP literal that is not a global
  unicast address is refused (`is_private_host`);
- on sending, the connection is made only to the addresses of the host's DNS answer that are
  global (`PublicOnlyConnector`): a name that resolves to a private address, now or after a
  rebinding, and a redirect to one, are refused at connect time, where no later lookup can
  change the answer.

An IPv6 address that carries an IPv4 address (IPv4-mapped, NAT64, 6to4, ...) is judged as that
IPv4 address in both checks: a NAT64 gateway forwards 64:ff9b::a00:5 to 10.0.0.5.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult


class PrivateAddressError(OSError):
    """The endpoint's host has no public address to connect to."""


# IPv6 ranges whose addresses carry an IPv4 address in their low 32 bits, and reach it: NAT64's
# well-known prefix (RFC 6052; a NAT64 gateway, e.g. a cloud VPC's, forwards to that IPv4
# address, private ones included), IPv4-translated (SIIT, RFC 7915) and the deprecated
# IPv4-compatible form (::/96, which holds :: and ::1 too). Each is judged by its IPv4 address.
_CARRY_IPV4 = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "::ffff:0:0:0/96", "::/96"))
# Never a public push service, whatever they hold: NAT64's local-use prefix (RFC 8215, a
# network's own translator), and site-local (fec0::/10, deprecated; Python counts it global).
_NEVER = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b:1::/48", "fec0::/10"))


def _as_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for when connected to (mapped, NAT64, translated,
    compatible, 6to4, Teredo's client), or None."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if any(ip in net for net in _CARRY_IPV4):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return ip.teredo[1] if ip.teredo is not None else None


def is_public_address(host: str) -> bool:
    """`host` is an IP address a request may reach: global unicast. An IPv6 address that
    carries an IPv4 one (IPv4-mapped, NAT64, 6to4, ...) is judged as that IPv4 address too:
    `is_global` alone judged 64:ff9b::a00:5 (NAT64 for 10.0.0.5) and 2002:a9fe:a9fe:: (6to4 for
    the metadata service) public."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in net for net in _NEVER):
            return False
        v4 = _as_ipv4(ip)
        if v4 is not None:
            return v4.is_global and not v4.is_multicast
    return ip.is_global and not ip.is_multicast


def is_private_host(host: str | None) -> bool:
    """A URL host that names a non-public place by itself: `localhost` (and its subdomains) or
    an IP literal that is not a public address. A DNS name is judged when connecting."""
    if not host:
        return True
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        # Not canonical but numeric (`2130706433`, `127.1`, `0x7f.1`): an address to `inet_aton`,
        # never a DNS name (no top-level domain is numeric).
        last = host.rsplit(".", 1)[-1]
        return last.isdigit() or last.startswith("0x")
    return not is_public_address(host)


def is_never_reachable(host: str) -> bool:
    """`host` is an address no push may reach even where private addresses are allowed (the
    `push_private_addresses` override, for tests and a push service on the local network):
    link-local (169.254.0.0/16, where cloud metadata services answer, and fe80::/10), the
    unspecified address and multicast, also when carried in an IPv6 address (NAT64, ...).
    Not an IP address (a DNS name, judged when connecting): False."""
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and (v4 := _as_ipv4(ip)) is not None:
        ips.append(v4)
    return any(a.is_link_local or a.is_unspecified or a.is_multicast for a in ips)


class PublicOnlyConnector(aiohttp.TCPConnector):
    """Connects only to the public addresses among a host's resolved ones (literals included).
    `allow_private` (the override): to any but those `is_never_reachable` names; it connected
    anywhere, the metadata service included, before the sixteenth session's `privacy` branch."""

    def __init__(self, *args: Any, allow_private: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._allow_private = allow_private

    async def _resolve_host(self, host: str, port: int,
                            traces: Sequence[Any] | None = None) -> list[ResolveResult]:
        found = await super()._resolve_host(host, port, traces)
        if self._allow_private:
            usable = [r for r in found if not is_never_reachable(r["host"])]
        else:
            usable = [r for r in found if is_public_address(r["host"])]
        if not usable:
            raise PrivateAddressError(f"{host} has no address a push may reach")
        return usable

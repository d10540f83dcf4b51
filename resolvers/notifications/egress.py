"""Requests to URLs a client named (Web Push endpoints) reach only public internet addresses.

A push endpoint is any URL a logged-in user registers, and the job worker POSTs to it: without
a check, anyone could make the worker send requests to loopback, the private network or a cloud
metadata service (server-side request forgery), and learn from what happens to the subscription
whether something answered there. Two checks, both off with
`notifications.push_private_addresses` (tests and a push service on the local network):

- on registering, an endpoint whose host is `localhost` or an IP literal that is not a global
  unicast address is refused (`is_private_host`);
- on sending, the connection is made only to the addresses of the host's DNS answer that are
  global (`PublicOnlyConnector`): a name that resolves to a private address, now or after a
  rebinding, and a redirect to one, are refused at connect time, where no later lookup can
  change the answer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult


class PrivateAddressError(OSError):
    """The endpoint's host has no public address to connect to."""


def is_public_address(host: str) -> bool:
    """`host` is an IP address a request may reach: global unicast (IPv4-mapped IPv6 judged
    as the IPv4 address it maps)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
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


class PublicOnlyConnector(aiohttp.TCPConnector):
    """Connects only to the public addresses among a host's resolved ones (literals included)."""

    async def _resolve_host(self, host: str, port: int,
                            traces: Sequence[Any] | None = None) -> list[ResolveResult]:
        found = await super()._resolve_host(host, port, traces)
        public = [r for r in found if is_public_address(r["host"])]
        if not public:
            raise PrivateAddressError(f"{host} has no public address")
        return public

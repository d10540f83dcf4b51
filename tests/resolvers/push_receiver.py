"""A real Web Push receiver for tests: an aiohttp endpoint that checks the VAPID signature (RFC
8292: an ES256 JWT whose `aud` is this origin, unexpired, with a `sub`, signed by the key in
`k`) and decrypts the payload (RFC 8291, aes128gcm) with `http_ece`, as a browser's push service
and user agent would. Endpoints are `/push/<name>`; `status[name]` makes one answer 410 (gone)
or fail a number of times (`fail[name]`)."""

from __future__ import annotations

import base64
import json
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field

import http_ece
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_vapid(header: str, origin: str) -> str:
    """The VAPID public key (`k`) of a valid `Authorization: vapid t=..., k=...` header; raises otherwise."""
    scheme, _, params = header.partition(" ")
    assert scheme.lower() == "vapid", header
    parts = dict(p.strip().split("=", 1) for p in params.split(","))
    token, key = parts["t"], parts["k"]
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
    head, claims, sig = token.split(".")
    assert json.loads(unb64url(head))["alg"] == "ES256"
    raw = unb64url(sig)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))  # InvalidSignature if forged
    body = json.loads(unb64url(claims))
    assert body["aud"] == origin, (body, origin)
    assert body["exp"] > time.time() and body["exp"] <= time.time() + 24 * 3600, body
    assert str(body["sub"]).startswith(("mailto:", "https:")), body
    return key


@dataclass
class Device:
    name: str
    private: ec.EllipticCurvePrivateKey
    auth: bytes

    def keys(self) -> dict[str, str]:
        point = self.private.public_key().public_bytes(serialization.Encoding.X962,
                                                       serialization.PublicFormat.UncompressedPoint)
        return {"p256dh": b64url(point), "auth": b64url(self.auth)}


@dataclass
class PushReceiver:
    server: TestServer | None = None
    devices: dict[str, Device] = field(default_factory=dict)
    received: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    vapid_keys: set[str] = field(default_factory=set)
    status: dict[str, int] = field(default_factory=dict)    # name -> a fixed answer (410: gone)
    fail: dict[str, int] = field(default_factory=dict)      # name -> how many 500s before success
    refused: list[str] = field(default_factory=list)        # why requests were refused

    def device(self, name: str) -> Device:
        self.devices[name] = Device(name, ec.generate_private_key(ec.SECP256R1()), os.urandom(16))
        return self.devices[name]

    def endpoint(self, name: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(f"/push/{name}"))

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        origin = f"{request.scheme}://{request.host}"
        try:
            self.vapid_keys.add(verify_vapid(request.headers["Authorization"], origin))
            assert request.headers.get("Content-Encoding") == "aes128gcm", request.headers
            assert int(request.headers["TTL"]) >= 0
        except (AssertionError, KeyError, ValueError, InvalidSignature) as exc:
            self.refused.append(repr(exc))
            return web.Response(status=401)
        if name in self.status:
            return web.Response(status=self.status[name])
        if self.fail.get(name, 0) > 0:
            self.fail[name] -= 1
            return web.Response(status=500)
        device = self.devices[name]
        plain = http_ece.decrypt(await request.read(), private_key=device.private, auth_secret=device.auth,
                                 version="aes128gcm")
        self.received[name].append(json.loads(plain))
        return web.Response(status=201)

    async def start(self) -> PushReceiver:
        app = web.Application()
        app.router.add_post("/push/{name}", self.handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

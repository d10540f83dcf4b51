"""Signed, expiring URLs for the local object store (HMAC-SHA256 with `MediaSettings.signing_key`).

Pure functions, no I/O: the local store signs the URLs it hands out, and the app's thin HTTP
route checks them through `verify_signed_request`. A signature covers the HTTP method, the
object key, the expiry and every other query parameter (upload id, part number, the part's
sha256), so a URL lets its holder do exactly one thing to one object until it expires.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote, urlencode

from media_pipeline.errors import InvalidSignatureError

EXPIRES_PARAM = "X-Tg-Expires"
SIGNATURE_PARAM = "X-Tg-Signature"


def _canonical(method: str, key: str, params: Mapping[str, str]) -> bytes:
    items = sorted((k, str(v)) for k, v in params.items() if k != SIGNATURE_PARAM)
    return f"{method.upper()}\n{key}\n{urlencode(items)}".encode()


def _signature(signing_key: str, method: str, key: str, params: Mapping[str, str]) -> str:
    return hmac.new(signing_key.encode(), _canonical(method, key, params), hashlib.sha256).hexdigest()


def sign_url(
    signing_key: str,
    method: str,
    base_url: str,
    key: str,
    expires_at: int,
    params: Mapping[str, str] | None = None,
) -> str:
    """The URL `base_url/key?params&X-Tg-Expires=..&X-Tg-Signature=..` valid until `expires_at` (unix s)."""
    signed = {**(params or {}), EXPIRES_PARAM: str(int(expires_at))}
    signed[SIGNATURE_PARAM] = _signature(signing_key, method, key, signed)
    return f"{base_url.rstrip('/')}/{quote(key)}?{urlencode(sorted(signed.items()))}"


def verify_signed_request(
    signing_key: str, method: str, key: str, query: Mapping[str, str], now: float
) -> None:
    """Raise `InvalidSignatureError` unless `query` carries a valid, unexpired signature for (method, key)."""
    given = query.get(SIGNATURE_PARAM)
    expires = query.get(EXPIRES_PARAM)
    if not given or not expires:
        raise InvalidSignatureError("URL is not signed; ask the API for a fresh URL")
    try:
        expires_at = int(expires)
    except ValueError:
        raise InvalidSignatureError("URL has a malformed expiry; ask the API for a fresh URL") from None
    expected = _signature(signing_key, method, key, query)
    if not hmac.compare_digest(given, expected):
        raise InvalidSignatureError("URL signature does not match; ask the API for a fresh URL")
    if now > expires_at:
        raise InvalidSignatureError(
            "URL has expired; ask the API for a fresh URL (upload status returns new part URLs)")

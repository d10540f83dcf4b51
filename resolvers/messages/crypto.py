"""Message bodies at rest: AES-256-GCM under keys from config, each ciphertext tagged with its key id.

A sealed body is `{"k": key id, "n": nonce, "c": ciphertext+tag}` (base64), stored in the MESSAGE
object's data; the plaintext never reaches the store, the cache or the outbox. The associated
data binds a body to its thread and sender, so a ciphertext copied into another thread or
another sender's message does not open. Rotation: add a key, make it `active_key`; keys that
sealed stored bodies stay in `encryption_keys` until `reseal` has moved those bodies to the new
key (docs/messages.md, "Key rotation").

The content fingerprint (what makes a retried `clientMessageId` the same message) is an HMAC
under the active key, never a bare hash: a dump alone cannot test guesses of a short message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from config.settings import MessageSettings


class MessageKeyError(Exception):
    """A body names a key id that is not configured, or does not open under it."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class BodyCipher:
    """Seals and opens message bodies with the configured keys (one per process, built once)."""

    def __init__(self, settings: MessageSettings) -> None:
        self._keys: dict[str, bytes] = {}
        for kid, text in settings.encryption_keys.items():
            try:
                key = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"messages.encryption_keys.{kid} is not base64") from None
            if len(key) != 32:
                raise ValueError(f"messages.encryption_keys.{kid} must be 32 bytes (AES-256), got {len(key)}")
            self._keys[kid] = key
        if settings.active_key not in self._keys:
            raise ValueError(f"messages.active_key {settings.active_key!r} is not in messages.encryption_keys")
        self.active = settings.active_key

    @staticmethod
    def _aad(thread_id: int, sender_id: int) -> bytes:
        return f"taogram.message:{thread_id}:{sender_id}".encode()

    def seal(self, text: str, thread_id: int, sender_id: int) -> dict[str, str]:
        nonce = os.urandom(12)  # 96 random bits per body: collisions are negligible below 2^32 bodies per key
        ct = AESGCM(self._keys[self.active]).encrypt(nonce, text.encode(), self._aad(thread_id, sender_id))
        return {"k": self.active, "n": _b64(nonce), "c": _b64(ct)}

    def open(self, sealed: dict[str, str], thread_id: int, sender_id: int) -> str:
        key = self._keys.get(sealed.get("k", ""))
        if key is None:
            raise MessageKeyError(f"message key {sealed.get('k')!r} is not configured "
                                  "(keep retired keys until resealed)")
        try:
            plain = AESGCM(key).decrypt(base64.b64decode(sealed["n"]), base64.b64decode(sealed["c"]),
                                        self._aad(thread_id, sender_id))
        except (InvalidTag, KeyError, binascii.Error, ValueError) as exc:
            raise MessageKeyError("a message body does not open under its key") from exc
        return plain.decode()

    def needs_reseal(self, sealed: dict[str, str]) -> bool:
        return sealed.get("k") != self.active

    def fingerprint(self, content: str) -> str:
        """`<key id>:<HMAC-SHA256>` of a send's canonical content under the active key."""
        digest = hmac.new(self._keys[self.active], content.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{self.active}:{digest}"

    def same_content(self, fp: str, content: str) -> bool:
        """Whether `content` has the fingerprint `fp` (computed under the key `fp` names, which
        may be older than the active one; a retired key answers False)."""
        key_id, _, digest = fp.rpartition(":")
        key = self._keys.get(key_id)
        if key is None:
            return False
        mine = hmac.new(key, content.encode(), hashlib.sha256).hexdigest()[:32]
        return hmac.compare_digest(mine, digest)

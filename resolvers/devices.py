"""Devices: a session's device named from its User-Agent, and whether an account has used it before.

- `device_of(user_agent)` parses with ua-parser (its regexes compile on first use, ~0.1 s, so
  the parse runs in a thread, never on the event loop): "Chrome 120 on Mac OS X 10.15", or
  "Unknown device" for an empty or unrecognised agent.
- An account's known devices are unique keys (`known_device`, `<user id>:<digest>`) of the
  device's *family* (browser, OS and hardware families, no versions), so a browser update is
  not a new device. A log-in from a device whose key is absent claims it and notifies the
  account (`NEW_DEVICE_LOGIN`); the sign-up's device is claimed silently. Two log-ins racing
  from one new device may both notify: harmless.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from ua_parser import parse

from tao import Tao

KNOWN_DEVICES = "known_device"  # unique-key namespace: "<user id>:<digest of the device family>"
UNKNOWN = "Unknown device"


@dataclass(frozen=True, slots=True)
class Device:
    name: str    # shown to the user
    family: str  # what "the same device" means: no versions


def _version(*parts: str | None) -> str:
    return ".".join(p for p in parts if p)


def _parse(user_agent: str) -> Device:
    if not user_agent.strip():
        return Device(UNKNOWN, UNKNOWN)
    r = parse(user_agent[:512])
    browser = r.user_agent.family if r.user_agent and r.user_agent.family != "Other" else ""
    os_name = r.os.family if r.os and r.os.family != "Other" else ""
    hardware = r.device.family if r.device and r.device.family not in ("Other", "") else ""
    if not browser and not os_name:
        return Device(UNKNOWN, f"{UNKNOWN}:{hashlib.sha1(user_agent.encode()).hexdigest()[:12]}")
    name = " ".join(x for x in (browser, _version(r.user_agent.major) if r.user_agent else "") if x)
    if os_name:
        os_version = _version(r.os.major, r.os.minor) if r.os else ""
        name = f"{name} on {os_name} {os_version}".strip() if name else f"{os_name} {os_version}".strip()
    if hardware and hardware not in name:
        name += f" ({hardware})"
    return Device(name[:120], f"{browser}|{os_name}|{hardware}")


async def device_of(user_agent: str) -> Device:
    return await asyncio.to_thread(_parse, user_agent)


def _key(user_id: int, device: Device) -> str:
    return f"{user_id}:{hashlib.sha256(device.family.encode()).hexdigest()[:32]}"


async def remember_device(tao: Tao, user_id: int, device: Device) -> bool:
    """Record the device as one the account uses; True if it was new to the account."""
    key = _key(user_id, device)
    if (await tao.key_get_many(KNOWN_DEVICES, [key])).get(key) is not None:
        return False
    await tao.key_claim(KNOWN_DEVICES, key, user_id)
    return True

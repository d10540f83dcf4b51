"""Listing every key a memcached server holds, in bounded memory: `lru_crawler metadump hash`.

A dump is one line per item (`key=<urlencoded> exp=... la=... ...`, then `END`): as many lines as
the server holds items, so it is never gathered into one buffer or list. `spool` drains the
socket at wire speed into an unnamed temporary file (one key a line, the tier's prefix removed),
holding at most one receive buffer and one partial line; `read_batch` then hands the keys back a
batch at a time. Memory stays constant whatever the cache holds; the disk holds the key names
(tens of bytes each) until the spool is closed.

Why a spool and not a reader that consumes the socket as the caller works: memcached's crawler
waits for a slow metadump client with its place in the walk taken (for `hash`, a bucket of the
hash table, which shares its lock with the items of that stripe), so a reader that pauses to
query SQL between batches would stall other clients' gets and sets on that server, and a stall
of the tier's timeout marks the server faulty (a flush). Drained at once, the dump costs the
server what it cost before.

The scan is best effort, as memcached's is: an item bumped or added during the walk may be
missed (callers that must not miss known keys also read them by name, see `tao.erase`).
"""

from __future__ import annotations

import socket
import tempfile
from typing import IO, Any
from urllib.parse import unquote

_RECV = 1 << 15


def spool(server: Any, timeout: float, wire_prefix: str) -> tuple[IO[bytes], int]:
    """Dump one server's keys into a temporary file (seeked to its start) and return it with the
    number of keys written: those under `wire_prefix`, without it. Blocking: run it on a thread.
    Raises OSError if the server refuses the dump (BUSY: another crawl is running)."""
    host, port = server if isinstance(server, tuple) else (server, 11211)
    out = tempfile.TemporaryFile()  # unlinked at once: the disk is freed when it is closed
    written = 0
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            # `hash` walks the hash table (memcached >= 1.6.?): every item, whatever its LRU segment.
            sock.sendall(b"lru_crawler metadump hash\r\n")
            tail = b""  # a line not yet complete
            done = False
            while not done:
                chunk = sock.recv(_RECV)
                if not chunk:
                    break
                lines = (tail + chunk).split(b"\n")  # items end in "\n", END in "\r\n"
                tail = lines.pop()
                for line in lines:
                    line = line.rstrip(b"\r")
                    if line == b"END":
                        done = True
                        break
                    if not line.startswith(b"key="):
                        raise OSError(f"memcached {host}:{port} refused metadump: {line[:80]!r}")
                    key = unquote(line.split(b" ", 1)[0][4:].decode("ascii", "replace"))
                    if key.startswith(wire_prefix):
                        out.write(key[len(wire_prefix):].encode() + b"\n")
                        written += 1
            if not done:
                raise OSError(f"memcached {host}:{port} closed the metadump before its END: {tail[:80]!r}")
        out.seek(0)
        return out, written
    except BaseException:
        out.close()
        raise


def read_batch(spooled: IO[bytes], size: int) -> list[str]:
    """Up to `size` keys from a spool (an empty list once it is exhausted). Blocking (file I/O)."""
    keys: list[str] = []
    while len(keys) < size:
        line = spooled.readline()
        if not line:
            break
        keys.append(line.rstrip(b"\n").decode("ascii", "replace"))
    return keys

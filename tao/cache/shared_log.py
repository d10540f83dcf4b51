"""The invalidation log shared by every process that opens one embedded data dir: how each
process's in-process cache (`LocalCache`) learns, before a read, which keys another process's
writes changed, so the embedded default (a server beside its batch jobs, or `server.processes`
> 1) never serves a value another process's finished write has replaced.

The file `<sqlite_dir>/cache-log/log` is memory-mapped by every process. It holds a header of
`SLOTS` 64-bit heads, then one ring of `RING` entries per slot; an entry is a cache key (a
length byte and up to `ENTRY - 1` bytes). A process claims a free slot when it opens the store
(an exclusive, non-blocking `flock` on `cache-log/slot-<i>.lock`, held while it runs and
released by the kernel when it exits, so a dead process's slot is reused) and is the only
writer of its ring and its head: `publish(keys)` — called by the store's write path with the
keys it installs after a commit, before the write returns — writes the entries, then moves the
head. Stores to shared memory: no lock, no system call.

`changed()` compares the header with the copy this process took last time (512 bytes: the
whole cost of a read when nobody wrote) and, for each other slot whose head moved, reads the
keys between. A process's own publishes update its copy as they are made, so it never reads
its own keys back (its cache holds what it wrote). A reader that fell more than `RING` keys
behind a slot (or whose entries were overwritten while it read them) is told `everything`.

Invariant: once a write call has returned, every key its commit changed is in its process's
ring, so a read another process begins after that sees it. Not covered: a writer killed between
its COMMIT and its publish (the few statements of its cache install): other processes may serve
the values it replaced until the cache TTL (the memcached tier has the same window).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import threading
from pathlib import Path

SLOTS = 64     # processes that can have one data dir open at once
RING = 4096    # keys a slot remembers: a reader further behind than this drops everything
ENTRY = 128    # bytes per key (a length byte and the key); a longer key means "everything"
_HEAD = struct.Struct("<Q")
_HEADER = SLOTS * _HEAD.size
_SIZE = _HEADER + SLOTS * RING * ENTRY
_EVERYTHING = b"*"  # never a cache key (keys are kind:id...)


class SlotsExhaustedError(RuntimeError):
    pass


class SharedInvalidations:
    """One process's handle on the data dir's invalidation log (see the module docstring).
    Open with `SharedInvalidations.open(directory)` (blocking file I/O: call it in a thread)."""

    def __init__(self, mm: mmap.mmap, slot: int, lock_fd: int, data_fd: int) -> None:
        self._mm = mm
        self.slot = slot
        self._lock_fd, self._data_fd = lock_fd, data_fd
        self._lock = threading.Lock()
        self._seen = bytearray(mm[:_HEADER])
        self._head = _HEAD.unpack_from(self._seen, slot * _HEAD.size)[0]

    @classmethod
    def open(cls, directory: Path) -> SharedInvalidations:
        directory.mkdir(parents=True, exist_ok=True)
        data_fd = os.open(directory / "log", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(data_fd).st_size < _SIZE:  # sparse: only the pages written take space
                os.ftruncate(data_fd, _SIZE)
            lock_fd, slot = cls._claim_slot(directory)
            try:
                mm = mmap.mmap(data_fd, _SIZE)
            except BaseException:
                os.close(lock_fd)
                raise
        except BaseException:
            os.close(data_fd)
            raise
        return cls(mm, slot, lock_fd, data_fd)

    @staticmethod
    def _claim_slot(directory: Path) -> tuple[int, int]:
        for slot in range(SLOTS):
            fd = os.open(directory / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return fd, slot
        raise SlotsExhaustedError(f"{SLOTS} processes already have the embedded store in {directory.parent} "
                                  "open: stop one, or run on MariaDB and memcached")

    def publish(self, keys: list[str]) -> None:
        """Tell the other processes these keys changed (call after the commit, before returning)."""
        if not keys:
            return
        base = _HEADER + self.slot * RING * ENTRY
        with self._lock:
            head = self._head
            for key in dict.fromkeys(keys):
                raw = key.encode()
                if len(raw) >= ENTRY:
                    raw = _EVERYTHING
                at = base + (head % RING) * ENTRY
                self._mm[at:at + 1 + len(raw)] = bytes((len(raw),)) + raw
                head += 1
            self._head = head
            # The entries first, then the head: a reader reads only entries below a head it saw.
            _HEAD.pack_into(self._mm, self.slot * _HEAD.size, head)
            _HEAD.pack_into(self._seen, self.slot * _HEAD.size, head)

    def changed(self) -> tuple[list[str], bool]:
        """(keys other processes published since the last call, whether to drop everything)."""
        if self._mm[:_HEADER] == self._seen:
            return [], False
        keys: list[str] = []
        everything = False
        with self._lock:
            now = self._mm[:_HEADER]
            for slot in range(SLOTS):
                at = slot * _HEAD.size
                if slot == self.slot or now[at:at + _HEAD.size] == self._seen[at:at + _HEAD.size]:
                    continue
                seen, head = _HEAD.unpack_from(self._seen, at)[0], _HEAD.unpack_from(now, at)[0]
                if everything or head - seen > RING or head < seen:
                    everything = True
                    continue
                base = _HEADER + slot * RING * ENTRY
                for seq in range(seen, head):
                    pos = base + (seq % RING) * ENTRY
                    n = self._mm[pos]
                    keys.append(self._mm[pos + 1:pos + 1 + n].decode("ascii", "replace"))
                # Entries older than the head now minus RING may have been overwritten as we read.
                if _HEAD.unpack_from(self._mm, at)[0] - RING > seen:
                    everything = True
            self._seen[:] = now
        if _EVERYTHING.decode() in keys:
            everything = True
        return ([] if everything else keys), everything

    def close(self) -> None:
        """Release the slot (idempotent)."""
        with self._lock:
            if self._mm.closed:
                return
            self._mm.close()
            os.close(self._data_fd)
            os.close(self._lock_fd)

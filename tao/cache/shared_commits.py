"""Commit counters shared by every process that opens one embedded data dir: how each
process's in-process cache (`LocalCache`) learns, before a read, that another process committed
to a shard, so the embedded default (a server, its batch jobs, `server.processes` > 1) never
serves a value another process's finished write has made stale.

The file `<sqlite_dir>/commits/counters` is memory-mapped by every process: a table of
unsigned 64-bit counters, one row per logical shard, one column per process *slot* (`SLOTS`).
A process claims a free slot when it opens the store (an exclusive, non-blocking `flock` on
`commits/slot-<i>.lock`, held while it runs and released by the kernel when it exits, so a dead
process's slot is reused) and is the only writer of its column: after each commit on shard `s`
the SQLite backend calls `bump(s)`, which adds one to `counter[s][slot]` — a store to shared
memory, no lock, no system call.

`changed()` compares the table with the copy this process took last time (one `bytes`
comparison of `n_shards * SLOTS * 8` bytes: 4 KB for the default 8 shards) and returns the
shards whose row moved. A process's own bumps update its copy as they are made, so only other
processes' commits show (its own writes install their new values in its cache already).

Invariant: a commit is counted before the writer's call returns (the bump follows the COMMIT,
inside the backend's transaction), so a read another process begins after that call returned
sees the bump. Not covered: a writer killed between its COMMIT and its bump (microseconds):
other processes may then serve the value it replaced until the cache TTL.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import threading
from pathlib import Path

SLOTS = 64  # processes that can have one data dir open at once
_COUNTER = struct.Struct("<Q")


class SlotsExhaustedError(RuntimeError):
    pass


class SharedCommits:
    """Per-shard commit counters in shared memory (see the module docstring). Open with
    `SharedCommits.open(directory, n_shards)` (blocking file I/O: call it in a thread)."""

    def __init__(self, mm: mmap.mmap, n_shards: int, slot: int, lock_fd: int, data_fd: int) -> None:
        self._mm = mm
        self.n_shards = n_shards
        self.slot = slot
        self._row = SLOTS * _COUNTER.size
        self._size = n_shards * self._row
        self._lock_fd, self._data_fd = lock_fd, data_fd
        self._lock = threading.Lock()
        self._seen = bytearray(mm[:self._size])

    @classmethod
    def open(cls, directory: Path, n_shards: int) -> SharedCommits:
        directory.mkdir(parents=True, exist_ok=True)
        size = n_shards * SLOTS * _COUNTER.size
        data_fd = os.open(directory / "counters", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(data_fd).st_size < size:  # never shrink: rows only ever get appended
                os.ftruncate(data_fd, size)
            lock_fd, slot = cls._claim_slot(directory)
            mm = mmap.mmap(data_fd, size)
        except BaseException:
            os.close(data_fd)
            raise
        return cls(mm, n_shards, slot, lock_fd, data_fd)

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
                                  "open: stop one, or use MariaDB and memcached for more")

    def bump(self, shard: int) -> None:
        """Count a commit of this process on `shard` (call after the COMMIT, before returning)."""
        at = shard * self._row + self.slot * _COUNTER.size
        with self._lock:
            value = (_COUNTER.unpack_from(self._mm, at)[0] + 1) & 0xFFFF_FFFF_FFFF_FFFF
            _COUNTER.pack_into(self._mm, at, value)
            _COUNTER.pack_into(self._seen, at, value)

    def changed(self) -> list[int]:
        """The shards other processes committed to since the last call (cheap when none)."""
        now = self._mm[:self._size]
        if now == self._seen:
            return []
        with self._lock:
            now = self._mm[:self._size]  # again, under the lock: a bump of ours may have landed
            row = self._row
            moved = [s for s in range(self.n_shards)
                     if now[s * row:(s + 1) * row] != self._seen[s * row:(s + 1) * row]]
            self._seen[:] = now
        return moved

    def close(self) -> None:
        """Release the slot (idempotent). Bumps after this are not counted."""
        with self._lock:
            if self._mm.closed:
                return
            self._mm.close()
            os.close(self._data_fd)
            os.close(self._lock_fd)  # releases the slot

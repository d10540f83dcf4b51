"""Other OS processes for the store's concurrency, fault and CLI tests, and the bookkeeping that
turns what writers were told into what the store must hold.

- `write_config(settings, path)`: a TOML file `load_settings()` (and `python -m tao --config`)
  reads back into the same Settings, so a child process opens the very same store.
- `RemoteTao`: a `Tao` in another process (its own pools, cache heartbeat and view of which
  memcached servers are suspect), driven over a pipe.
- `Writer` / `expected_state`: a writer logs every operation with whether it was acknowledged;
  `expected_state` computes, per key, the final states the store may hold: the state of the last
  acknowledged operation, or that of any later unacknowledged one (a call that failed may or may
  not have committed). Writers own disjoint keys, so each key's operations are totally ordered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import multiprocessing
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from config import Settings, load_settings

CALL_TIMEOUT = 60.0  # a hung child fails the test instead of hanging it


# ---- settings -> TOML ------------------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def settings_toml(settings: Settings) -> str:
    lines: list[str] = []
    for section_name in type(settings).model_fields:
        part = getattr(settings, section_name)
        lines.append(f"[{section_name}]")
        tables = []
        for name in type(part).model_fields:
            value = getattr(part, name)
            if isinstance(value, list) and value and isinstance(value[0], BaseModel):
                tables.append((name, value))
            else:
                lines.append(f"{name} = {_toml_value(value)}")
        for name, items in tables:  # arrays of tables come after the section's plain keys
            for item in items:
                lines.append(f"[[{section_name}.{name}]]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in item.model_dump().items()]
        lines.append("")
    return "\n".join(lines)


def write_config(settings: Settings, path: Path) -> Path:
    path.write_text(settings_toml(settings))
    assert load_settings(path, env={}) == settings, "the TOML writer lost a setting"
    return path


# ---- another process, driven over a pipe ------------------------------------------------------

class ChildProcess:
    """`serve(conn, *args)` running in a spawned process, driven over a pipe: each message gets
    one answer; `None` asks the child to stop. What `RemoteTao` and the cache tests'
    `RemoteTier` share: spawning, a bounded wait for each answer (a hung child fails the test
    instead of hanging it) and a stop that kills a child that will not exit."""

    def __init__(self, serve: Callable[..., None], *args: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=serve, args=(child, *args), daemon=True)
        self._proc.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def send(self, msg: Any) -> None:
        """Queue a message without waiting for its answer (e.g. to a stopped child); see `receive`."""
        self._conn.send(msg)

    async def receive(self, what: str = "a request") -> Any:
        def recv() -> Any:
            if not self._conn.poll(CALL_TIMEOUT):
                raise TimeoutError(f"the {type(self).__name__} child did not answer {what} within {CALL_TIMEOUT}s")
            return self._conn.recv()

        return await asyncio.to_thread(recv)

    async def request(self, msg: Any, what: str) -> Any:
        await asyncio.to_thread(self._conn.send, msg)
        return await self.receive(what)

    async def close(self) -> None:
        def stop() -> None:
            try:
                self._conn.send(None)
            except OSError:
                pass
            self._proc.join(15)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()

        await asyncio.to_thread(stop)


# ---- a Tao in another process --------------------------------------------------------------

def _serve(conn: Any, config: str) -> None:
    from tao import open_tao

    async def main() -> None:
        tao = await open_tao(load_settings(config, env={}), migrate=False, start_worker=False)
        try:
            while True:
                msg = await asyncio.to_thread(conn.recv)
                if msg is None:
                    return
                verb, args = msg
                try:
                    conn.send(("ok", await getattr(tao, verb)(*args)))
                except Exception as exc:  # the parent re-raises it
                    conn.send(("error", f"{type(exc).__name__}: {exc}"))
        finally:
            await tao.close()

    asyncio.run(main())


class RemoteTao(ChildProcess):
    """`await remote.call("obj_get", [ids])` runs `tao.obj_get([ids])` in the child."""

    def __init__(self, config: Path) -> None:
        super().__init__(_serve, str(config))

    async def call(self, verb: str, *args: Any) -> Any:
        status, value = await self.request((verb, args), verb)
        if status == "error":
            raise RuntimeError(f"remote {verb} failed: {value}")
        return value


# ---- writers and what they were told -------------------------------------------------------

@dataclass
class Op:
    writer: str
    kind: str                 # "add" | "delete" | "obj"
    key: Any                  # (id1, atype, id2) for edges, (obj_id, data key) for "obj"
    value: Any                # (time, data) for add, None for delete, the int written for obj
    ok: bool = False
    error: str = ""
    started: float = 0.0
    elapsed: float = 0.0
    version: int = 0          # the version the store acknowledged (obj: the object's version)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["key"] = list(self.key)
        d["value"] = list(self.value) if isinstance(self.value, tuple) else self.value
        return d

    @classmethod
    def from_json(cls, d: dict) -> Op:
        d = dict(d)
        d["key"] = tuple(d["key"])
        if d["kind"] == "add":
            d["value"] = tuple(d["value"])
        return cls(**d)


@dataclass
class Writer:
    """One logical writer: a sequential series of calls on keys no other writer touches."""
    name: str
    log: list[Op] = field(default_factory=list)

    async def run(self, op: Op, call) -> Op:
        """Run `call()` (the store call for `op`) and log whether it was acknowledged."""
        op.started = time.monotonic()
        try:
            result = await call()
        except Exception as exc:
            op.error = f"{type(exc).__name__}: {exc}"
            op.exc = exc  # not logged across processes; for in-process assertions
        else:
            op.ok = True
            op.version = getattr(result, "version", 0)
        op.elapsed = time.monotonic() - op.started
        self.log.append(op)
        return op

    async def add(self, tao, id1: int, atype: str, id2: int, data: dict) -> Op:
        t = int(time.time() * 1000)
        return await self.run(Op(self.name, "add", (id1, atype, id2), (t, data)),
                               lambda: tao.assoc_add(id1, atype, id2, time=t, data=data))

    async def delete(self, tao, id1: int, atype: str, id2: int) -> Op:
        return await self.run(Op(self.name, "delete", (id1, atype, id2), None),
                              lambda: tao.assoc_delete(id1, atype, id2))

    async def obj_set(self, tao, obj_id: int, key: str, value: int) -> Op:
        return await self.run(Op(self.name, "obj", (obj_id, key), value),
                              lambda: tao.obj_update(obj_id, {key: value}))


ABSENT = None


def expected_state(ops: Iterable[Op], initial: dict | None = None) -> dict[Any, list]:
    """{key: [acceptable final states]}: the last acknowledged op's state first, then those of
    later unacknowledged ops (each may have committed). `initial` gives states before the ops."""
    by_key: dict[Any, list[Op]] = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    out: dict[Any, list] = {}
    for key, seq in by_key.items():
        state = (initial or {}).get(key, ABSENT)
        acceptable = [state]
        for op in seq:
            op_state = ABSENT if op.kind == "delete" else op.value
            if op.ok:
                acceptable = [op_state]
            else:
                acceptable.append(op_state)
        out[key] = acceptable
    return out


def unacknowledged(ops: Iterable[Op]) -> list[Op]:
    return [op for op in ops if not op.ok]

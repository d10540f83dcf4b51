"""Real `server.py` processes for tests and benchmarks: settings passed as `TAOGRAM_*`
variables, started on a free port, ready when /healthz answers, stopped with SIGTERM (the
orderly shut-down) or SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from config import Settings
from tao import open_tao
from tests.harness.processes import free_port

ROOT = Path(__file__).resolve().parent.parent


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def settings_env(settings: Settings) -> dict[str, str]:
    """`TAOGRAM_<SECTION>__<FIELD>` for every field, so a child process loads these settings."""
    env = {}
    for section_name in type(settings).model_fields:
        section = getattr(settings, section_name)
        for name in type(section).model_fields:
            env[f"TAOGRAM_{section_name.upper()}__{name.upper()}"] = _toml(getattr(section, name))
    return env


class ServerProcess:
    def __init__(self, settings: Settings, log_path: Path, *, port: int | None = None,
                 python_args: tuple[str, ...] = (), python: str | None = None) -> None:
        server = settings.server.model_copy(update={"port": port or free_port()})
        self.settings = settings.model_copy(update={"server": server})
        self.port = self.settings.server.port
        self.log_path = log_path
        self.python_args = python_args  # before server.py: a wrapper script (bench/profiled_server.py), say
        self.python = python or sys.executable  # another interpreter's venv (bench/send_ab.py --python-b)
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAOGRAM_")}
        env.update(settings_env(self.settings))
        env["PYTHONPATH"] = str(ROOT)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.python, *self.python_args, str(ROOT / "server.py")], cwd=ROOT, env=env,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server.py exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server.py did not answer /healthz within {timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (the orderly shut-down) and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@asynccontextmanager
async def started_servers(settings: Settings, log_dir: Path, n: int = 2) -> AsyncIterator[list[ServerProcess]]:
    """`n` server processes on the settings' (migrated) store, started together, killed at the end."""
    pre = await open_tao(settings, migrate=True, start_worker=False)  # migrating is an operator's step
    await pre.close()
    procs = [ServerProcess(settings, log_dir / f"server{i}.log") for i in range(n)]
    try:
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in procs))
        yield procs
    finally:
        for p in procs:
            p.kill()

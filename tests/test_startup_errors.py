"""A server or worker that cannot start says why in one sentence (exit status 2), never with a
traceback: the example production config as shipped (no message key), an unreachable database
server, wrong credentials, unapplied migrations."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from config import MySQLServer
from tests.serverproc import ROOT, settings_env
from tests.tao.conftest import make_settings


def _run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TAOGRAM_")}
    done = subprocess.run([sys.executable, *argv], cwd=ROOT, env={**base, **env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def _one_sentence(out: str) -> str:
    """The command's own sentence (other lines are the process's logs, e.g. a cache warning on a
    busy box): exactly one, and no traceback anywhere."""
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if line.startswith(("taogram:", "python -m tao"))]
    assert len(lines) == 1, out
    return lines[0]


def test_the_example_production_config_names_the_missing_message_key():
    rc, out = _run(["server.py"], {"TAOGRAM_CONFIG": "config/examples/production.toml"})
    assert rc == 2
    assert "messages.encryption_keys" in _one_sentence(out)


def test_an_unreachable_database_server_is_named(services, test_id, tmp_path):
    s = make_settings("mysql", services, test_id, tmp_path)
    s.store.mysql_servers = [MySQLServer(host="127.0.0.1", port=1), *s.store.mysql_servers[1:]]
    for argv in (["server.py"], ["-m", "tao", "worker"]):
        rc, out = _run(argv, settings_env(s))
        assert rc == 2
        line = _one_sentence(out)
        assert "store.mysql_servers[0] (127.0.0.1:1" in line and "cannot reach" in line, line


def test_wrong_credentials_and_unapplied_migrations_say_what_to_do(services, test_id, tmp_path):
    s = make_settings("mysql", services, test_id, tmp_path)
    wrong = s.model_copy(update={"store": s.store.model_copy(update={"mysql_servers": [
        m.model_copy(update={"user": "nobody", "password": "wrong"}) for m in s.store.mysql_servers]})})
    rc, out = _run(["-m", "tao", "migrate"], settings_env(wrong))
    assert rc == 2 and "refused the credentials" in _one_sentence(out)

    rc, out = _run(["server.py"], settings_env(s))  # a fresh database prefix: nothing migrated yet
    assert rc == 2
    assert "python -m tao migrate" in _one_sentence(out)


@pytest.mark.parametrize("argv", [["server.py"], ["-m", "tao", "migrate"]])
def test_a_missing_config_file_is_one_sentence(argv):
    rc, out = _run(argv, {"TAOGRAM_CONFIG": "/nonexistent/taogram.toml"})
    assert rc != 0 and "/nonexistent/taogram.toml" in _one_sentence(out)

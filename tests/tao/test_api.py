"""The store's public surface is what `Tao.__all__` declares, and the dialect differences are
the backend's (no verb code asks which server it talks to)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from config import MySQLServer, StoreSettings
from tao import Tao
from tao.backends.mysql import MySQLBackend, _has_row_alias
from tao.backends.sqlite import SQLiteBackend
from tao.shardmap import ShardMap

TAO_DIR = Path(__file__).resolve().parents[2] / "tao"


def test_every_public_member_of_tao_is_declared():
    public = {name for name, _ in inspect.getmembers(Tao) if not name.startswith("_")}
    instance_attrs = {"settings", "registry", "outbox", "broker", "rate_limits", "holds", "clock", "sketches"}
    assert public | instance_attrs == set(Tao.__all__)


def test_no_verb_code_branches_on_the_backend():
    for path in TAO_DIR.glob("*.py"):
        if path.name == "migrations.py":  # DDL is kept per backend, by name
            continue
        text = path.read_text()
        assert not re.search(r"backend\.name|\.name == ['\"](mysql|sqlite)", text), path.name


def _mysql() -> MySQLBackend:
    s = StoreSettings()
    s.mysql_servers = [MySQLServer()]
    return MySQLBackend(s, ShardMap.from_settings(s))


def test_upsert_uses_values_on_mariadb_and_the_row_alias_on_mysql_8():
    backend = _mysql()
    sql = backend.upsert("assoc_counts", ("id1", "atype", "count"), ("id1", "atype"),
                         {"count": "NEW(count)", "version": "version + 1"}, rows=2)
    assert sql.endswith("ON DUPLICATE KEY UPDATE count = VALUES(count), version = version + 1")
    assert sql.count("(%s, %s, %s)") == 2
    backend._row_alias = True  # what the handshake of a MySQL >= 8.0.19 server sets
    sql = backend.upsert("assoc_counts", ("id1", "atype", "count"), ("id1", "atype"), {"count": "NEW(count)"})
    assert sql.endswith("VALUES (%s, %s, %s) AS new ON DUPLICATE KEY UPDATE count = new.count")


def test_server_flavour_from_the_handshake_version():
    assert not _has_row_alias("10.11.19-MariaDB-0+deb12u1")
    assert not _has_row_alias("5.5.5-10.11.6-MariaDB")  # MariaDB's replication-compatible prefix
    assert not _has_row_alias("8.0.18")
    assert _has_row_alias("8.0.19") and _has_row_alias("8.4.3")


def test_keys_in_is_a_row_constructor_on_mariadb_and_an_or_on_sqlite(tmp_path):
    assert _mysql().keys_in(("id1", "atype"), 2) == "(id1, atype) IN ((%s, %s), (%s, %s))"
    assert _mysql().keys_in(("id1", "atype"), 1) == "(id1 = %s AND atype = %s)"
    s = StoreSettings()
    s.backend, s.sqlite_dir = "sqlite", str(tmp_path)
    sqlite = SQLiteBackend(s, ShardMap.from_settings(s))
    assert sqlite.keys_in(("id1", "atype"), 2) == "(id1 = %s AND atype = %s) OR (id1 = %s AND atype = %s)"

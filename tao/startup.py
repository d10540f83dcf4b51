"""What a process that cannot start says: one sentence naming the setting or the step to fix.

`explain_startup_error(exc, settings)` turns the store's start-up failures (an unreachable or
refusing database server, unapplied migrations, a bad setting) into that sentence; the commands
(`server.py`, `python -m tao ...`) print it and exit with status 2 instead of a traceback.
Anything it does not recognise returns None: a bug, which keeps its traceback.
"""

from __future__ import annotations

from config import ConfigError, MySQLServer, Settings
from tao.errors import IdSlotsExhaustedError, MigrationError, ShardUnavailableError
from tao.shardmap import ShardMap

# MariaDB's "access denied" and "unknown database" error numbers.
_ACCESS_DENIED = {1044, 1045, 1698}


def _probe(srv: MySQLServer, timeout: float) -> tuple[int | None, str]:
    """Connect to `srv` once more, directly, for the driver's own words: (error number, message)."""
    import pymysql

    kwargs = dict(user=srv.user, password=srv.password, connect_timeout=timeout)
    kwargs.update(unix_socket=srv.unix_socket) if srv.unix_socket else kwargs.update(host=srv.host, port=srv.port)
    try:
        pymysql.connect(**kwargs).close()
    except pymysql.err.MySQLError as exc:
        args = exc.args
        return (args[0] if args and isinstance(args[0], int) else None), str(args[1] if len(args) > 1 else exc)
    except OSError as exc:
        return None, str(exc)
    return None, ""


def explain_startup_error(exc: BaseException, settings: Settings) -> str | None:
    if isinstance(exc, ConfigError):
        return f"configuration error: {exc}"
    if isinstance(exc, MigrationError):
        return f"the database schema is not ready: {exc}"
    if isinstance(exc, IdSlotsExhaustedError):
        return f"no id slot is free: {exc}"
    if isinstance(exc, ShardUnavailableError):
        where, code, detail = f"shard {exc.shard}", None, ""
        if settings.store.backend == "mysql" and settings.store.mysql_servers:
            try:
                index = ShardMap.from_settings(settings.store).server_of_shard[exc.shard]
                srv = settings.store.mysql_servers[index]
            except (IndexError, KeyError, ValueError):
                srv = None
            if srv is not None:
                where = (f"MariaDB server store.mysql_servers[{index}] "
                         f"({srv.unix_socket or f'{srv.host}:{srv.port}'}, user {srv.user!r})")
                code, detail = _probe(srv, settings.store.connect_timeout)
        if code in _ACCESS_DENIED:
            return (f"{where} refused the credentials ({detail}): set the user and password in "
                    "store.mysql_servers (or TAOGRAM_STORE__MYSQL_SERVERS) and grant that user the taogram databases")
        return (f"cannot reach {where}{f' ({detail})' if detail else ''}: start it, or fix store.mysql_servers "
                "in the config")
    return None

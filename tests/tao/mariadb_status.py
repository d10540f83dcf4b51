"""MariaDB's own counters, summed over every server of the harness: what a test of the MySQL
backend's statements counts (`SHOW GLOBAL STATUS`)."""

from __future__ import annotations

import pymysql


def global_status(services, names: tuple[str, ...]) -> int:
    """The sum of the named status counters over every MariaDB server of `services`."""
    total = 0
    marks = ", ".join(["%s"] * len(names))
    for m in services.mysql:
        conn = pymysql.connect(host=m.host, port=m.port, user=m.user, password=m.password)
        try:
            with conn.cursor() as cur:
                cur.execute(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({marks})", names)
                total += sum(int(v) for _, v in cur.fetchall())
        finally:
            conn.close()
    return total

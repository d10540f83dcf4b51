"""SQL backends: one interface (`tao.backends.base.Backend`), two implementations —
MySQL/MariaDB through aiomysql pools (production, tests) and SQLite files through aiosqlite
(the embedded default)."""

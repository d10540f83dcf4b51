"""Throwaway MariaDB, memcached, S3 (moto) and Redis servers for tests and benchmarks.

    from tests.harness import start_services
    services = start_services(n_mysql=2, n_memcached=2, s3=True)
    services.mysql[0].port; services.memcached[1]; services.s3_endpoint
    services.kill_mysql(0); services.start_mysql(0)            # SIGKILL, restart on same datadir
    services.pause_memcached(1); services.resume_memcached(1)  # SIGSTOP / SIGCONT
    services.kill_memcached(1); services.start_memcached(1)    # restart empty on the same port
    services.redis_url; services.kill_redis(); services.start_redis()  # the event broker
    services.stop()                                            # kill all, remove the temp dir

Servers run on free loopback ports under one temp dir and never outlive the process that
started them (`processes.py` says how). A missing binary is a `RuntimeError` naming the package
to install: tests never skip for want of a server. `python -m tests.harness up` keeps a set
running for fast iterations; `attach_services()` (what the pytest fixture does when
`TAOGRAM_TEST_SERVICES` is set) reuses it.
"""

from tests.harness.services import DEFAULT_JSON, MySQLEndpoint, Services, attach_services, start_services

__all__ = ["DEFAULT_JSON", "MySQLEndpoint", "Services", "attach_services", "start_services"]

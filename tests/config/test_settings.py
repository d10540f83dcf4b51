"""Settings: the file and the environment in their order, strict types, ranges and the rules
between fields refused at load with one sentence each, and the example configs kept valid."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from config import (
    CacheBackend,
    CacheSettings,
    ConfigError,
    Settings,
    StoreBackend,
    load_settings,
    load_settings_or_exit,
)
from tao.cache import MemcachedCache

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "config" / "examples").glob("*.toml"))


def refusal(env: dict[str, str], path: Path | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env=env)
    return str(caught.value)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_config_loads(example: Path) -> None:
    settings = load_settings(example, env={})
    assert settings != Settings()


def test_no_file_and_no_environment_give_the_defaults() -> None:
    assert load_settings(env={"HOME": "/x", "TAOGRAM_TEST_SERVICES": "/y"}) == Settings()


def test_the_environment_overrides_the_file_which_overrides_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[store]\nlogical_shards = 16\npool_max = 20\n[cache]\nkey_prefix = "file"\n')
    s = load_settings(path, env={"TAOGRAM_STORE__POOL_MAX": "30", "TAOGRAM_CONFIG": "/not/read"})
    assert (s.store.logical_shards, s.store.pool_max, s.cache.key_prefix, s.cache.ttl_seconds) == (16, 30, "file", 3600)
    # TAOGRAM_CONFIG names the file when no path is given.
    assert load_settings(env={"TAOGRAM_CONFIG": str(path)}).store.pool_max == 20


def test_environment_values_are_toml_values_else_strings() -> None:
    s = load_settings(env={
        "TAOGRAM_CACHE__SERVERS": '["a:1", "b:2"]', "TAOGRAM_CACHE__BACKEND": "memcached",
        "TAOGRAM_SERVER__GRAPHIQL": "false", "TAOGRAM_FEED__INACTIVE_DAYS": "3",
        "TAOGRAM_MESSAGES__ENCRYPTION_KEYS": '{ "2026-12" = "k" }', "TAOGRAM_SERVER__HOST": "0.0.0.0",
    })
    assert s.cache.servers == ["a:1", "b:2"] and s.cache.backend is CacheBackend.MEMCACHED
    assert s.server.graphiql is False and s.feed.inactive_days == 3.0 and isinstance(s.feed.inactive_days, float)
    assert s.messages.encryption_keys == {"2026-12": "k"} and s.server.host == "0.0.0.0"


def test_backends_are_enums_that_compare_to_their_names() -> None:
    s = load_settings(env={"TAOGRAM_STORE__BACKEND": "mysql", "TAOGRAM_STORE__MYSQL_SERVERS": '[{ host = "db" }]'})
    assert s.store.backend is StoreBackend.MYSQL and s.store.backend == "mysql"
    assert refusal({"TAOGRAM_STORE__BACKEND": "postgres"}) == \
        "store.backend must be 'sqlite' or 'mysql' (got 'postgres', from TAOGRAM_STORE__BACKEND)"


def test_a_value_out_of_range_is_one_sentence() -> None:
    assert refusal({"TAOGRAM_STORE__POOL_MAX": "0"}) == \
        "store.pool_max must be between 1 and 1000 (got 0, from TAOGRAM_STORE__POOL_MAX)"


def test_types_are_strict(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[server]\nport = "8080"\ngraphiql = 1\n')
    message = refusal({}, path)
    assert message.splitlines() == [
        f"2 settings are invalid (file {path}):",
        "  server.port must be an integer (got '8080')",
        "  server.graphiql must be true or false (got 1)",
    ]


def test_unknown_and_removed_settings_are_named_with_a_suggestion() -> None:
    assert refusal({"TAOGRAM_STORE__POOL_MIN": "1"}) == \
        "store.pool_min is not a setting (from TAOGRAM_STORE__POOL_MIN); did you mean pool_max?"
    assert refusal({"TAOGRAM_STOR__POOL_MAX": "1"}).startswith("stor is not a section (from TAOGRAM_STOR__POOL_MAX)")


@pytest.mark.parametrize(("env", "expected"), [
    ({"TAOGRAM_CACHE__BACKEND": "memcached", "TAOGRAM_CACHE__SERVERS": '["a:1"]',
      "TAOGRAM_CACHE__HEARTBEAT_INTERVAL": "0.5"}, "cache.heartbeat_interval (0.5) must be at most cache.timeout/4"),
    ({"TAOGRAM_CACHE__BACKEND": "memcached"}, "cache.servers must list at least one"),
    ({"TAOGRAM_STORE__BACKEND": "mysql"}, "store.mysql_servers must list at least one server"),
    ({"TAOGRAM_STORE__LOGICAL_SHARDS": "2", "TAOGRAM_STORE__SHARD_MAP": '{ "0" = [0, 0] }'},
     "store.shard_map: shard 0 is mapped twice"),
    ({"TAOGRAM_STORE__LOGICAL_SHARDS": "2", "TAOGRAM_STORE__SHARD_MAP": '{ "0" = [0] }'},
     "store.shard_map: shards [1] are not mapped"),
    ({"TAOGRAM_REALTIME__STREAM_KEEP": "10"}, "realtime.stream_keep (10) must exceed realtime.max_replay (1000)"),
    ({"TAOGRAM_FEED__KEEP_EDGES": "10"}, "feed.keep_edges (10) must be at least feed.page_candidates (500)"),
    ({"TAOGRAM_BROKER__RECONNECT_MIN": "5.0"}, "broker.reconnect_min (5.0) must be at most broker.reconnect_max"),
    ({"TAOGRAM_JOBS__BACKOFF_BASE": "500"}, "jobs.backoff_base (500.0) must be at most jobs.backoff_max (300.0)"),
    ({"TAOGRAM_JOBS__OWN_LANE_PREFIXES": '["search.index.p", ""]'}, "jobs.own_lane_prefixes must not hold an empty"),
])
def test_rules_between_fields_are_checked_at_load(env: dict[str, str], expected: str) -> None:
    assert refusal(env).startswith(expected)


def test_a_missing_or_broken_file_is_a_sentence(tmp_path: Path) -> None:
    assert refusal({}, tmp_path / "nope.toml") == \
        f"config file {tmp_path / 'nope.toml'} does not exist (from --config or TAOGRAM_CONFIG)"
    broken = tmp_path / "broken.toml"
    broken.write_text("[store\n")
    assert refusal({}, broken).startswith(f"config file {broken} is not valid TOML")


def test_entry_points_exit_with_the_sentence_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAOGRAM_STORE__POOL_MAX", "0")
    with pytest.raises(SystemExit, match="^taogram: store.pool_max must be between 1 and 1000"):
        load_settings_or_exit()
    done = subprocess.run([sys.executable, "server.py"], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "TAOGRAM_STORE__POOL_MAX": "0"})
    assert done.returncode == 1
    assert done.stderr.strip() == \
        "taogram: store.pool_max must be between 1 and 1000 (got 0, from TAOGRAM_STORE__POOL_MAX)"


def test_the_memcached_tier_takes_its_defaults_from_the_settings() -> None:
    params = inspect.signature(MemcachedCache).parameters
    defaults = CacheSettings()
    for name in ("timeout", "connect_timeout", "ttl_seconds", "threads", "heartbeat_interval"):
        assert params[name].default == getattr(defaults, name), name


def test_media_served_fills_in_the_servers_own_address() -> None:
    s = Settings()
    s.server.host, s.server.port = "::", 8123
    assert s.media_served().local_base_url == "http://[::1]:8123/media"
    assert s.media.local_base_url == ""  # a copy: the loaded settings are unchanged


def test_the_configuration_page_describes_every_section() -> None:
    page = (REPO / "docs" / "configuration.md").read_text()
    assert [name for name in Settings.model_fields if f"### `{name}`" not in page] == []

"""`make cluster` chooses its ports once (scripts/cluster.py `load_state`): the server's and each
service's are distinct. The server's port is only probed when chosen and bound when the server
starts, after the services: a service given the same port kept the server from ever binding
(seen in CI: memcached on the server's port, /healthz never answered)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cluster_script():
    spec = importlib.util.spec_from_file_location("taogram_cluster_script", ROOT / "scripts" / "cluster.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _all_ports(state: dict) -> list[int]:
    ports = state["ports"]
    return [ports["server"], *ports["mysql"], *ports["memcached"], ports["redis"], ports["s3"]]


def test_no_service_is_given_the_servers_port(cluster_script, tmp_path, monkeypatch):
    server_port = 29_000
    # free_port probes ports at random: here it offers the server's port first, as it did in CI.
    offers = iter([server_port, server_port, 29_001, 29_002, 29_003, 29_004, 29_005, 29_006])
    monkeypatch.setattr(cluster_script, "free_port", lambda: next(offers))
    monkeypatch.setattr(cluster_script, "_port_free", lambda port: True)
    state = cluster_script.load_state(tmp_path / "cluster", server_port)
    ports = _all_ports(state)
    assert ports[0] == server_port
    assert len(set(ports)) == len(ports), ports


def test_a_restart_on_a_services_port_is_refused_with_a_sentence(cluster_script, tmp_path):
    first = cluster_script.load_state(tmp_path / "cluster", None)
    taken_by_redis = first["ports"]["redis"]
    with pytest.raises(SystemExit, match="one of this cluster's own services' ports"):
        cluster_script.load_state(tmp_path / "cluster", taken_by_redis)
    again = cluster_script.load_state(tmp_path / "cluster", None)
    assert again["ports"] == first["ports"]

"""REDIS_URL forms: one Redis, a Cluster's seed nodes, Sentinels and the master's name."""

from __future__ import annotations

import pytest

from gateway.redis_topology import Topology


def test_a_plain_url_is_one_redis() -> None:
    topology = Topology.from_url("redis://:pw@10.0.0.5:6380/2?socket_timeout=0.5")
    assert topology.kind == "single" and topology.nodes == ()
    assert topology.node_url == "redis://:pw@10.0.0.5:6380/2?socket_timeout=0.5"


def test_a_cluster_url_names_its_seed_nodes() -> None:
    topology = Topology.from_url(
        "redis+cluster://user:s%40cret@h1:7000,h2,[::1]:7002/?socket_timeout=2"
    )
    assert topology.kind == "cluster"
    assert topology.nodes == (("h1", 7000), ("h2", 6379), ("::1", 7002))
    assert topology.node_url == "redis://user:s%40cret@h1:7000/0?socket_timeout=2"
    assert Topology.from_url("rediss+cluster://h1:7000").node_url.startswith("rediss://h1:7000/0")


def test_a_sentinel_url_names_sentinels_master_and_database() -> None:
    url = "redis+sentinel://:pw@s1,s2:26380/mymaster/3?sentinel_password=spw&socket_timeout=1"
    topology = Topology.from_url(url)
    assert topology.kind == "sentinel" and topology.master == "mymaster"
    assert topology.nodes == (("s1", 26379), ("s2", 26380))
    assert topology.sentinel_options == (("sentinel_password", "spw"),)
    assert topology.node_url == "redis://:pw@s1:26379/3?socket_timeout=1"
    assert str(topology) == "sentinel s1:26379,s2:26380 master mymaster"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("memcached://h:1", "unsupported Redis URL scheme"),
        ("redis+mesh://h:1", "unsupported Redis URL scheme"),
        ("redis+cluster:///", "at least one host"),
        ("redis+cluster://h:1/2", "only database 0"),
        ("redis+cluster://h:1/?sentinel_password=x", "only for redis\\+sentinel"),
        ("redis+sentinel://s:26379", "master's name"),
        ("redis+sentinel://s:26379/m/x", "not a number"),
        ("redis+sentinel://s:26379/m/0?bogus=1", "unsupported Redis URL option 'bogus'"),
        ("redis+cluster://h:notaport", "bad port"),
    ],
)
def test_a_bad_url_is_refused_in_one_line(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Topology.from_url(url)


async def test_the_request_path_bounds_its_connections_whatever_the_url_says() -> None:
    url = "redis+cluster://h1:7000/?max_connections=3&retry_on_timeout=true&socket_timeout=4"
    commands = Topology.from_url(url).commands()  # builds clients, connects to nothing
    background = Topology.from_url(url).background(socket_timeout=10)
    try:
        client = commands.client  # type: ignore[attr-defined]
        kwargs = client.nodes_manager.connection_kwargs
        assert kwargs["socket_timeout"] == 4.0  # the URL's
        assert kwargs["max_connections"] == 64  # the seam's bound, not the URL's pool knob
        assert background.nodes_manager.connection_kwargs["max_connections"] == 3  # type: ignore[union-attr]
    finally:
        await commands.aclose()
        await background.aclose()

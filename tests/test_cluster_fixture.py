"""The loopback Redis Cluster the cluster tests run on."""

from __future__ import annotations

import redis.cluster

from oprc_redis_events.connect.redis_client import redis_client
from oprc_redis_events.dev.cluster import RedisCluster


def test_the_shared_cluster_has_three_primaries_that_serve_every_slot(
    cluster_url: str, redis_cluster_server: RedisCluster
) -> None:
    client = redis_client(cluster_url, cluster=True)
    assert isinstance(client, redis.cluster.RedisCluster)
    try:
        assert len(client.get_primaries()) == 3
        for i in range(64):
            client.set(f"k{{{i}}}", i)
        nodes = {client.get_node_from_key(f"k{{{i}}}").port for i in range(64)}
        assert nodes == set(redis_cluster_server.primary_ports())
    finally:
        client.close()

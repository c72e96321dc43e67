"""dev: tools apart from the runtime: the demo, the benchmarks and private test servers
(``redis-server`` on a free loopback port).  May import every runtime sub-package; only
``cli`` imports it.
"""

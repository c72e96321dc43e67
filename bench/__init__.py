"""Benchmarks of oprc-redis-events: ``python -m bench`` (see oprc_redis_events/bench.py)."""

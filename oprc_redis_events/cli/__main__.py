"""``python -m oprc_redis_events.cli``: the same as the ``oprc-redis-events`` command."""

from .main import main

main()

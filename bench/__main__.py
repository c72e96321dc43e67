"""``python -m bench [--quick] [--full] [--rate N] [--rss-triggers N] [--json PATH]
[--redis-url URL] [--cluster]``: the same as ``oprc-redis-events bench``."""

from oprc_redis_events.cli import main

if __name__ == "__main__":
    main(["bench", *__import__("sys").argv[1:]])

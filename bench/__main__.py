"""``python -m bench [--quick] [--json PATH] [--redis-url URL]``: the same as
``oprc-redis-events bench``."""

from oprc_redis_events.cli import main

if __name__ == "__main__":
    main(["bench", *__import__("sys").argv[1:]])

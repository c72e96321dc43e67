"""protocol: what goes into Redis and onto Zenoh, as pure functions over plain data.

The Redis key layout and id rules (``keys``), the trigger configuration and its index
(``triggers``), the outbox entry format (``outbox``), and trigger payloads as one pair,
``encode`` (entry -> Zenoh key and bytes) and ``decode`` (bytes -> what a target sees).
No I/O.  May import ``errors``, ``config`` and ``pb`` only.
"""

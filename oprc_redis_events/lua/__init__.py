"""lua: the Redis scripts, one ``.lua`` file per atomic operation (``write``, ``capture``,
``expire``, ``lease``; ``lib/events.lua`` is shared), and ``loader``, which registers them
once for sync and asyncio clients and reloads them after a restart.  May import
``errors``, ``config``, ``pb`` and ``protocol``.
"""

"""connect: opening connections from settings: Redis clients (sync and asyncio) and Zenoh
sessions, with their retries and the messages a user sees when a server is unreachable.
May import ``errors``, ``config``, ``pb``, ``protocol`` and ``lua``.
"""

"""functions: serving Python functions on Zenoh: the function host (async PUTs and sync
GETs, the invocation context with a store bound to the invocation's depth and trace) and
example functions used by the demo and compose.  May import everything below it
(``errors``, ``config``, ``pb``, ``protocol``, ``lua``, ``connect``, ``client``), not
``worker``, ``dev`` or ``cli``.
"""

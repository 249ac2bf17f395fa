"""The delayed queue: when each delivery is due, and which worker holds it right now.

Owns the ``DelayedQueue`` protocol (``base``) and its two backends: ``RedisQueue`` (two sorted sets
and Lua scripts, ``redis_queue`` + ``keys`` + ``lua/``) and ``SqlQueue`` (the ``deliveries`` table
itself, ``sql_queue``). The queue holds due times and leases only; the database stays the source of
truth, and the queue can be rebuilt from it. Also here: the endpoints' rate-limit token buckets
(``rate_limit``: ``RedisRateLimiter`` beside the Redis queue, ``LocalRateLimiter`` in-process).

May import: the kernel (``hookline.errors``, ``hookline.clock``, ``hookline.ids``), ``redis``,
``sqlalchemy``, and — in ``sql_queue`` only — ``hookline.storage.models``. Nothing above it, and no
other sibling layer.
"""

from hookline.queue.base import DelayedQueue
from hookline.queue.keys import QueueKeys
from hookline.queue.redis_queue import RedisQueue
from hookline.queue.sql_queue import SqlQueue

__all__ = ["DelayedQueue", "QueueKeys", "RedisQueue", "SqlQueue"]

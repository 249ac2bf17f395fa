"""The Redis key layout of the delayed queue (two sorted sets under one hash tag) and of the
endpoints' rate-limit buckets.

    {prefix}{queue}:due       member = delivery id, score = due time (ms since the Unix epoch)
    {prefix}{queue}:inflight  member = delivery id, score = lease deadline (ms since the epoch)

An id is in at most one of the two sets: every Lua script that moves it removes it from one and
adds it to the other in the same call. Both names carry the hash tag ``{queue}`` so that on Redis
Cluster they live in one slot and a script may touch both (Cluster refuses cross-slot scripts).
Scores are whole milliseconds, which a double holds exactly for any date we will meet.

    {prefix}{rate}:{endpoint id}  hash: tokens = tokens left, ts = when counted (ms since the
                                  epoch); the endpoint's rate-limit bucket (``queue.rate_limit``)

Every bucket carries the hash tag ``{rate}``, so one script may take tokens from the buckets of
all the endpoints of a batch on Redis Cluster too (one slot for all buckets: each is a few bytes
touched once per batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

HASH_TAG: Final = "{queue}"
RATE_HASH_TAG: Final = "{rate}"


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The names of the queue's two sorted sets for one key ``prefix``."""

    prefix: str = "hookline:"

    def __post_init__(self) -> None:
        # A brace in the prefix would become the hash tag instead of ours (Redis Cluster hashes
        # the first {...}), so the two keys could land in different slots.
        if "{" in self.prefix or "}" in self.prefix:
            raise ValueError(f"a queue key prefix cannot contain braces: {self.prefix!r}")

    @property
    def due(self) -> str:
        """Sorted set of ids waiting for their due time (score: due time in ms)."""
        return f"{self.prefix}{HASH_TAG}:due"

    @property
    def inflight(self) -> str:
        """Sorted set of claimed ids (score: lease deadline in ms)."""
        return f"{self.prefix}{HASH_TAG}:inflight"

    def rate_bucket(self, endpoint_id: str) -> str:
        """Hash holding the rate-limit token bucket of one endpoint (``queue.rate_limit``)."""
        return f"{self.prefix}{RATE_HASH_TAG}:{endpoint_id}"

"""The ``DelayedQueue`` seam: an index of due times that workers claim from with a lease.

The queue holds *due times only*. The database is the source of truth for everything else
(state, attempts, the version that stops two workers from recording the same attempt); a queue
can be rebuilt from it, which is what the sweeper does with ``add_missing``.

An id is, as far as the queue knows, in one of three places:

    absent ──schedule──► due ──get_due_retries──► in flight (lease deadline)
                          ▲                          │
                          ├──── schedule_retry ──────┤  the attempt failed: due again later
                          ├──── release ─────────────┤  never started (shutdown)
                          └──── recover_expired ─────┤  lease ran out (worker died)
                                                     └── complete_retry ──► absent

Every transition is atomic per id. A claim is known by its delivery id alone (there is no
claim token): a worker whose lease expired and whose id was claimed again must not touch that id
any more, and the database's ``version`` check is what turns such a late worker's outcome into a
no-op. Times are tz-aware datetimes from the caller's clock (a naive one raises ``ValueError``);
the queue never reads a clock of its own. A lease is *expired* once ``now >= deadline``.

Every method raises ``hookline.errors.Unavailable`` when the backing store cannot be reached,
with the driver's error as ``__cause__``. Any other backend error is a bug and propagates as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol


def require_aware(when: datetime) -> datetime:
    """``when`` itself; a naive datetime is a caller's bug and raises ``ValueError``."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"queue times must be timezone-aware, got {when!r}")
    return when


def require_lease(lease_s: float) -> float:
    """``lease_s`` itself; a lease must be a positive number of seconds (``ValueError``)."""
    if not lease_s > 0:
        raise ValueError(f"lease_s must be positive, got {lease_s!r}")
    return lease_s


class DelayedQueue(Protocol):
    """Due times of deliveries, claimed by workers with a lease (at-least-once)."""

    leases_in_database: bool
    """True when the lease is a column of the deliveries table itself (``SqlQueue``), so the
    database already knows every claim; False when only the queue holds it (``RedisQueue``), and
    the worker also records the lease in the database, where a queue restarted empty cannot
    lose it."""

    async def schedule_retry(self, delivery_id: str, *, due_at: datetime) -> None:
        """Make ``delivery_id`` due at ``due_at``.

        An idempotent upsert: calling it twice leaves one entry with the last ``due_at`` (later
        or earlier than before). If the id is in flight, it leaves the in-flight set in the same
        atomic step, so the claim is over and a concurrent ``get_due_retries`` sees the id either
        still claimed or due at ``due_at``, never both, never neither. The worker calls this after
        committing a ``retrying`` outcome; there is no ``complete_retry`` for it afterwards.
        """
        ...

    async def schedule_many(self, items: Sequence[tuple[str, datetime]]) -> None:
        """``schedule_retry`` for every ``(delivery_id, due_at)`` pair, in one round trip.

        Same semantics per pair (a later pair for the same id wins); atomic as a whole on Redis,
        one transaction on SQL. Used by publish fan-out and by the worker's batch settle. An
        empty sequence does nothing.
        """
        ...

    async def get_due_retries(self, *, now: datetime, limit: int, lease_s: float) -> list[str]:
        """Claim up to ``limit`` ids whose due time is ``<= now``, oldest due time first.

        Each claimed id is in flight with a lease that ends at ``now + lease_s`` (the lease
        starts at claim time, not at the due time). Claiming is atomic: two concurrent callers
        never get the same id. A claimed id is not due again until ``release``,
        ``schedule_retry``, or until its lease has expired *and* ``recover_expired`` has run
        (``SqlQueue`` treats an expired lease as claimable at once; the sweeper runs
        ``recover_expired`` either way). Returns the ids in due-time order (ties by id); fewer
        than ``limit`` (possibly none) when fewer are due. ``limit <= 0`` claims nothing.
        """
        ...

    async def extend_lease(
        self, delivery_ids: Sequence[str], *, now: datetime, lease_s: float
    ) -> None:
        """Move the lease of ids that are still in flight to ``now + lease_s``.

        Called by the worker while a request runs longer than a lease. An id that is no longer
        in flight (completed, rescheduled, released or recovered) is left as it is: a lost claim
        is not resurrected. Ids the queue does not know are ignored.
        """
        ...

    async def complete_retry(self, delivery_ids: Sequence[str]) -> None:
        """Forget these claims: the ids leave the in-flight set; their due entries are untouched.

        Call it only AFTER the attempt's outcome is committed to the database: a worker that dies
        between commit and ``complete_retry`` leaves a claim that expires and is retried, and the
        database's version check turns that retry into a no-op (at-least-once, never lost).
        Ids that are not in flight are ignored.
        """
        ...

    async def discard(self, delivery_ids: Sequence[str]) -> None:
        """Forget these ids altogether, due or in flight: their deliveries were parked (their
        endpoint is disabled) and wait, with no due time, outside the queue. Call it after the
        park is committed; an id left behind is harmless (its claim is given up, as the
        database no longer calls it due). Ids the queue does not know are ignored."""
        ...

    async def release(self, delivery_ids: Sequence[str], *, due_at: datetime) -> None:
        """Give back claims the worker did not start (shutdown): they are due again at ``due_at``.

        Only ids still in flight move (atomically, per id); an id already completed, rescheduled
        or recovered is left alone, so a release never undoes a newer due time.
        """
        ...

    async def recover_expired(self, *, now: datetime, limit: int = 1000) -> int:
        """Make claims whose lease expired (deadline ``<= now``) due again, at ``now``.

        Recovers at most ``limit`` claims and returns how many; call again while the result
        equals ``limit``. This is how a worker killed mid-request loses nothing: its claims come
        back and another worker claims them.
        """
        ...

    async def add_missing(self, items: Sequence[tuple[str, datetime]]) -> int:
        """Make due, at its ``due_at``, every id the queue holds neither as due nor in flight.

        Returns how many ids it added. An id that is due keeps its due time; an id in flight keeps
        its claim: check and add are one atomic step per id, so a claim taken a moment earlier is
        never doubled (``schedule_many`` would end it). Used after a commit by publishers and by
        the sweeper, which passes ids the database says should be queued (Redis lost its data, or
        a crash fell between commit and enqueue). A queue that *is* the database (``SqlQueue``)
        never misses anything and returns 0.
        """
        ...

    async def next_due(self) -> datetime | None:
        """The earliest due time among the ids waiting (not claimed), or None when none wait.

        Lets an idle worker sleep until the next delivery falls due instead of a whole poll
        interval (an indexed lookup of one row, not a scan).
        """
        ...

    async def depth(self) -> int:
        """How many ids are due or in flight: the figure backpressure compares to its limit.

        Cheap (a counter or an indexed count), not a scan of the queue's contents.
        """
        ...

    async def ping(self) -> None:
        """Return when the backing store answers; raise ``hookline.errors.Unavailable`` if not."""
        ...

    async def close(self) -> None:
        """Release what the queue owns (a client it built itself); idempotent."""
        ...

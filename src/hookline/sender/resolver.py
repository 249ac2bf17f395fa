"""The resolver that vets addresses before aiohttp connects to them.

aiohttp connects to exactly the addresses its resolver returns (and caches them for the DNS TTL), so
filtering here means the address that was checked is the address that is dialled: a name cannot
answer with a public address to the check and a private one to the connect (DNS rebinding).
aiohttp does not call the resolver for IP-literal hosts; ``Sender`` vets those itself.

``blocked_destination`` asks the same question ahead of time (when a webhook URL is stored), with
a bounded lookup: a name that does not resolve yet is not refused, since every attempt vets again.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Final

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from hookline.sender.address_guard import AddressGuard, BlockedAddress, parse_address

LOOKUP_TIMEOUT_S: Final = 2.0
"""How long ``blocked_destination`` waits for DNS before it gives the name the benefit of the
doubt (a request that stores a webhook must not hang on a slow resolver)."""


class GuardedResolver(AbstractResolver):
    """Wraps a resolver and drops every address the ``AddressGuard`` refuses.

    ``base`` defaults to aiohttp's ``DefaultResolver``, which needs a running event loop: build a
    ``GuardedResolver`` inside one. ``close()`` closes ``base`` only when this resolver created it;
    an injected resolver belongs to whoever made it.
    """

    def __init__(self, guard: AddressGuard, base: AbstractResolver | None = None) -> None:
        self._guard = guard
        self._owns_base = base is None
        self._base: AbstractResolver = DefaultResolver() if base is None else base

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The allowed addresses of ``host``, in the base resolver's order.

        Raises ``BlockedAddress`` when every address of the name is refused, ``OSError`` when the
        base resolver answers with none, and lets the base resolver's own errors through unchanged.
        """
        results = await self._base.resolve(host, port, family)
        if not results:
            raise OSError(f"{host} resolved to no address")
        allowed = [result for result in results if self._guard.is_allowed(result["host"])]
        if not allowed:
            raise BlockedAddress(results[0]["host"], host=host)
        return allowed

    async def close(self) -> None:
        """Release the base resolver if this resolver created it."""
        if self._owns_base:
            await self._base.close()


async def blocked_destination(
    host: str,
    *,
    guard: AddressGuard,
    resolver: AbstractResolver,
    port: int = 0,
    timeout_s: float = LOOKUP_TIMEOUT_S,
) -> BlockedAddress | None:
    """Why a request to ``host`` would be refused right now, or None if it would not be.

    An IP literal is judged by ``guard`` alone. A name is looked up through ``resolver`` (both
    address families, as the sender's connector does) and is blocked when every address it
    has is refused, exactly when ``GuardedResolver`` would refuse it. A name that does not
    resolve, a failed lookup and one slower than ``timeout_s`` (seconds of the event loop's
    clock) are None: DNS may be set up later, and every attempt vets the name again.
    """
    literal = parse_address(host)
    if literal is not None:
        return None if guard.is_allowed(literal) else BlockedAddress(str(literal), host=host)
    try:
        async with asyncio.timeout(timeout_s):
            results = await resolver.resolve(host, port, socket.AF_UNSPEC)
    except BlockedAddress as exc:  # ``resolver`` guards by itself (a ``GuardedResolver``)
        return exc
    except (OSError, ValueError):  # TimeoutError is an OSError; IDNA errors are ValueErrors
        return None
    if not results or any(guard.is_allowed(result["host"]) for result in results):
        return None
    return BlockedAddress(results[0]["host"], host=host)

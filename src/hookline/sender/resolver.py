"""The resolver that vets addresses before aiohttp connects to them.

aiohttp connects to exactly the addresses its resolver returns (and caches them for the DNS TTL), so
filtering here means the address that was checked is the address that is dialled: a name cannot
answer with a public address to the check and a private one to the connect (DNS rebinding).
aiohttp does not call the resolver for IP-literal hosts; ``Sender`` vets those itself.
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from hookline.sender.address_guard import AddressGuard, BlockedAddress


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

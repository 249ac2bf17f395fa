"""``DestinationVetter``: refuses, when a webhook URL is stored, a host every attempt would refuse.

A URL whose host is, or resolves only to, an address the SSRF guard refuses would be created and
then fail every attempt with ``blocked_address``. Vetting it on create and on PATCH turns that
into a ``422`` that says how to allow it. The rules are the sender's own (``AddressGuard`` with
the operator's ``ALLOWED_NETWORKS``, ``sender.resolver.blocked_destination``), so a URL taken
here is one the sender would dial now; the sender still vets every attempt (DNS can change).
A name that does not resolve (yet), or whose lookup fails or is slow, is taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver

from hookline.sender.address_guard import AddressGuard, IPNetwork, is_loopback, parse_address
from hookline.sender.resolver import LOOKUP_TIMEOUT_S, blocked_destination


class DestinationVetter:
    """Decides whether a webhook URL points somewhere deliveries may go."""

    def __init__(
        self,
        *,
        allowed_networks: Sequence[IPNetwork],
        resolver: AbstractResolver,
        lookup_timeout_s: float = LOOKUP_TIMEOUT_S,
    ) -> None:
        self._guard = AddressGuard(allowed_networks)
        self._resolver = resolver
        self._lookup_timeout_s = lookup_timeout_s

    async def refusal(self, url: str) -> str | None:
        """Why deliveries to ``url`` would be refused, as a sentence that says how to allow
        them; None when they would not be (or ``url`` has no host to judge)."""
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError:
            return None  # not a URL the schema lets through; nothing to resolve
        if not host:
            return None
        blocked = await blocked_destination(
            host,
            guard=self._guard,
            resolver=self._resolver,
            port=port or 0,
            timeout_s=self._lookup_timeout_s,
        )
        if blocked is None:
            return None
        return _explain(host, blocked.address)


def _explain(host: str, address: str) -> str:
    parsed = parse_address(address)
    prefix = 32 if isinstance(parsed, IPv4Address) else 128
    subject = (
        f"the host {host} is"
        if parse_address(host) is not None
        else f"the host {host} resolves to {address}, which is"
    )
    loopback = ", or, for loopback, run `hookline serve --allow-loopback`"
    return (
        f"{subject} not a public address, so every delivery to it would be refused "
        f"(blocked_address); to allow it, add its network to ALLOWED_NETWORKS "
        f"(for example ALLOWED_NETWORKS={address}/{prefix})"
        f"{loopback if is_loopback(address) else ''}"
    )

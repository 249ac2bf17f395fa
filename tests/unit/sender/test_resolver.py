"""GuardedResolver: resolves through a base resolver and keeps only allowed addresses."""

from __future__ import annotations

import socket
from ipaddress import ip_network

import pytest

from hookline.sender.address_guard import AddressGuard, BlockedAddress
from hookline.sender.resolver import GuardedResolver
from tests.receiver import StaticResolver

TABLE = {
    "evil.test": ["10.0.0.1"],
    "metadata.test": ["169.254.169.254", "fd00:ec2::254"],
    "mixed.test": ["10.0.0.1", "93.184.216.34", "::1", "2606:4700:4700::1111"],
    "public.test": ["93.184.216.34"],
    "hook.test": ["127.0.0.1"],
}


async def resolve_hosts(resolver: GuardedResolver, name: str, port: int = 443) -> list[str]:
    results = await resolver.resolve(name, port, family=socket.AF_UNSPEC)
    return [result["host"] for result in results]


async def test_public_addresses_pass_through_unchanged() -> None:
    base = StaticResolver(TABLE)
    resolver = GuardedResolver(AddressGuard(), base)
    results = await resolver.resolve("public.test", 8443, family=socket.AF_UNSPEC)
    assert [(r["host"], r["port"], r["hostname"]) for r in results] == [
        ("93.184.216.34", 8443, "public.test")
    ]
    assert base.lookups == ["public.test"]


async def test_refused_addresses_are_dropped_and_order_is_kept() -> None:
    resolver = GuardedResolver(AddressGuard(), StaticResolver(TABLE))
    assert await resolve_hosts(resolver, "mixed.test") == [
        "93.184.216.34",
        "2606:4700:4700::1111",
    ]


@pytest.mark.parametrize("name", ["evil.test", "metadata.test", "hook.test"])
async def test_a_name_with_only_refused_addresses_is_blocked(name: str) -> None:
    resolver = GuardedResolver(AddressGuard(), StaticResolver(TABLE))
    with pytest.raises(BlockedAddress) as caught:
        await resolver.resolve(name, 80, family=socket.AF_UNSPEC)
    assert caught.value.host == name
    assert caught.value.address == TABLE[name][0]


async def test_the_allow_list_lets_a_private_name_through() -> None:
    guard = AddressGuard([ip_network("127.0.0.1/32")])
    resolver = GuardedResolver(guard, StaticResolver(TABLE))
    assert await resolve_hosts(resolver, "hook.test") == ["127.0.0.1"]
    with pytest.raises(BlockedAddress):
        await resolver.resolve("evil.test", 80, family=socket.AF_UNSPEC)


async def test_lookup_failures_of_the_base_resolver_pass_through() -> None:
    resolver = GuardedResolver(AddressGuard(), StaticResolver(TABLE))
    with pytest.raises(socket.gaierror):
        await resolver.resolve("unknown.test", 80, family=socket.AF_UNSPEC)


async def test_an_empty_answer_is_a_lookup_failure_not_a_block() -> None:
    resolver = GuardedResolver(AddressGuard(), StaticResolver(TABLE))
    with pytest.raises(OSError) as caught:  # public.test has no IPv6 address
        await resolver.resolve("public.test", 80, family=socket.AF_INET6)
    assert not isinstance(caught.value, BlockedAddress)


class ClosableResolver(StaticResolver):
    def __init__(self) -> None:
        super().__init__({})
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


async def test_an_injected_base_resolver_is_not_closed_by_the_wrapper() -> None:
    base = ClosableResolver()
    await GuardedResolver(AddressGuard(), base).close()
    assert base.closed == 0


async def test_the_default_base_resolver_is_created_and_closed_by_the_wrapper() -> None:
    resolver = GuardedResolver(AddressGuard())
    # the system resolver answers for the loopback literal without any DNS server
    with pytest.raises(BlockedAddress):
        await resolver.resolve("127.0.0.1", 80, family=socket.AF_INET)
    await resolver.close()

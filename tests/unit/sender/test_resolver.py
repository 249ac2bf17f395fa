"""GuardedResolver: resolves through a base resolver and keeps only allowed addresses;
blocked_destination: the same decision ahead of time, with a bounded lookup."""

from __future__ import annotations

import asyncio
import socket
from ipaddress import ip_network

import pytest
from aiohttp.abc import ResolveResult

from hookline.sender.address_guard import AddressGuard, BlockedAddress
from hookline.sender.resolver import LOOKUP_TIMEOUT_S, GuardedResolver, blocked_destination
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


# --- blocked_destination ----------------------------------------------------------------------


async def vet(host: str, *, allowed: str | None = None, base: StaticResolver | None = None) -> str:
    """What ``blocked_destination`` decides for ``host``: "taken" or the refused address."""
    guard = AddressGuard([ip_network(allowed)] if allowed else [])
    blocked = await blocked_destination(
        host, guard=guard, resolver=base or StaticResolver(TABLE), port=443
    )
    return "taken" if blocked is None else blocked.address


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("10.1.2.3", "10.1.2.3"),
        ("169.254.169.254", "169.254.169.254"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("64:ff9b::a00:1", "64:ff9b::a00:1"),  # NAT64 of 10.0.0.1
        ("93.184.216.34", "taken"),
        ("2606:4700:4700::1111", "taken"),
    ],
)
async def test_an_ip_literal_is_judged_by_the_guard_without_a_lookup(
    host: str, expected: str
) -> None:
    base = StaticResolver(TABLE)
    assert await vet(host, base=base) == expected
    assert base.lookups == []


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("evil.test", "10.0.0.1"),
        ("metadata.test", "169.254.169.254"),
        ("hook.test", "127.0.0.1"),
        ("mixed.test", "taken"),  # the sender would dial its public addresses
        ("public.test", "taken"),
        ("unknown.test", "taken"),  # does not resolve (yet): every attempt vets it again
    ],
)
async def test_a_name_is_blocked_only_when_every_address_is_refused(
    host: str, expected: str
) -> None:
    base = StaticResolver(TABLE)
    assert await vet(host, base=base) == expected
    assert base.lookups == [host]


async def test_the_blocked_name_is_named_with_its_address() -> None:
    blocked = await blocked_destination(
        "evil.test", guard=AddressGuard(), resolver=StaticResolver(TABLE)
    )
    assert blocked is not None
    assert (blocked.address, blocked.host) == ("10.0.0.1", "evil.test")
    assert "ALLOWED_NETWORKS" in str(blocked)


async def test_the_allow_list_takes_what_it_lists() -> None:
    assert await vet("127.0.0.1", allowed="127.0.0.1/32") == "taken"
    assert await vet("hook.test", allowed="127.0.0.1/32") == "taken"
    assert await vet("evil.test", allowed="127.0.0.1/32") == "10.0.0.1"


async def test_both_families_are_asked_for() -> None:
    # as the sender's connector does: a name with only IPv6 addresses is vetted too
    seen: list[socket.AddressFamily] = []

    class Recording(StaticResolver):
        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            seen.append(family)
            return await super().resolve(host, port, family)

    assert await vet("hook.test", base=Recording(TABLE)) == "127.0.0.1"
    assert seen == [socket.AF_UNSPEC]


class FailingResolver(StaticResolver):
    """Raises ``error`` for every name."""

    def __init__(self, error: Exception) -> None:
        super().__init__({})
        self.error = error

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        OSError("resolver unreachable"),
        socket.gaierror(socket.EAI_AGAIN, "temporary failure"),
        TimeoutError(),
        UnicodeError("label empty or too long"),  # an IDNA problem of the system resolver
    ],
)
async def test_a_failed_lookup_takes_the_name(error: Exception) -> None:
    assert await vet("flaky.test", base=FailingResolver(error)) == "taken"


async def test_a_guarding_resolver_refusal_is_passed_on() -> None:
    base = FailingResolver(BlockedAddress("10.0.0.1", host="evil.test"))
    assert await vet("evil.test", base=base) == "10.0.0.1"


class EmptyResolver(StaticResolver):
    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return []


async def test_an_empty_answer_takes_the_name() -> None:
    assert await vet("empty.test", base=EmptyResolver({})) == "taken"


class HangingResolver(StaticResolver):
    """Never answers; records whether the lookup was cancelled."""

    def __init__(self) -> None:
        super().__init__({})
        self.cancelled = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        raise AssertionError("unreachable")


async def test_a_lookup_that_does_not_answer_is_given_up_and_the_name_taken() -> None:
    # The bound is the event loop's own timer (no sleep here): a resolver that never answers
    # is abandoned after timeout_s, and the name is taken.
    base = HangingResolver()
    blocked = await asyncio.wait_for(
        blocked_destination("slow.test", guard=AddressGuard(), resolver=base, timeout_s=0.01),
        timeout=LOOKUP_TIMEOUT_S,
    )
    assert blocked is None
    assert base.cancelled

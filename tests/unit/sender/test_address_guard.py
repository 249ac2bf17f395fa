"""AddressGuard: which destinations a webhook may reach, as tables."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookline.errors import HooklineError
from hookline.sender.address_guard import (
    VERDICTS_MAX,
    AddressGuard,
    BlockedAddress,
    embedded_ipv4,
    is_loopback,
    is_public,
)

REFUSED = [
    # IPv4
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "this network"),
    ("10.0.0.1", "private 10/8"),
    ("10.255.255.255", "private 10/8, last"),
    ("172.16.0.1", "private 172.16/12"),
    ("172.31.255.254", "private 172.16/12, last"),
    ("192.168.1.1", "private 192.168/16"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback /8"),
    ("169.254.169.254", "cloud metadata (link-local)"),
    ("169.254.0.1", "link-local"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT, last"),
    ("192.0.0.1", "IETF protocol assignments"),
    ("192.0.2.10", "documentation TEST-NET-1"),
    ("198.51.100.7", "documentation TEST-NET-2"),
    ("203.0.113.9", "documentation TEST-NET-3"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.254", "benchmarking, last"),
    ("192.88.99.1", "6to4 relay anycast"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast SSDP"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    # IPv6
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local with a zone"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local fd"),
    ("fd00:ec2::254", "AWS IPv6 metadata"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "global-scope multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation RFC 9637"),
    ("2001:2::1", "benchmarking"),
    ("2001::1", "Teredo"),
    ("100::1", "discard-only"),
    ("64:ff9b:1::1", "local-use NAT64"),
    # IPv4 inside IPv6
    ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped metadata"),
    ("::ffff:0:10.0.0.1", "IPv4-translated private"),
    ("::10.0.0.1", "IPv4-compatible private"),
    ("::8.8.8.8", "IPv4-compatible (deprecated ::/96, refused whatever it carries)"),
    ("64:ff9b::10.0.0.1", "NAT64 of private"),
    ("64:ff9b::127.0.0.1", "NAT64 of loopback"),
    ("64:ff9b::169.254.169.254", "NAT64 of metadata"),
    ("2002:a00:1::1", "6to4 of 10.0.0.1"),
    ("2002:7f00:1::", "6to4 of 127.0.0.1"),
    ("2002:a9fe:a9fe::1", "6to4 of 169.254.169.254"),
    # not an address at all
    ("", "empty"),
    ("localhost", "a name"),
    ("127.1", "legacy short IPv4 form"),
    ("2130706433", "legacy integer IPv4 form"),
    ("10.0.0.1/8", "a network, not an address"),
]

ALLOWED = [
    ("8.8.8.8", "public IPv4"),
    ("1.1.1.1", "public IPv4"),
    ("93.184.216.34", "public IPv4"),
    ("100.63.255.255", "just below CGNAT"),
    ("100.128.0.0", "just above CGNAT"),
    ("172.15.255.255", "just below 172.16/12"),
    ("172.32.0.0", "just above 172.16/12"),
    ("169.253.255.255", "just below link-local"),
    ("2606:4700:4700::1111", "public IPv6"),
    ("2a00:1450:4001:80b::200e", "public IPv6"),
    ("[2606:4700:4700::1111]", "bracketed public IPv6"),
    ("::ffff:8.8.8.8", "IPv4-mapped public"),
    ("::ffff:0:8.8.8.8", "IPv4-translated public"),
    ("64:ff9b::8.8.8.8", "NAT64 of public"),
    ("2002:808:808::1", "6to4 of 8.8.8.8"),
]


@pytest.mark.parametrize(("ip", "why"), REFUSED)
def test_refused_without_allow_list(ip: str, why: str) -> None:
    guard = AddressGuard()
    assert guard.is_allowed(ip) is False, why
    with pytest.raises(BlockedAddress):
        guard.check(ip)


@pytest.mark.parametrize(("ip", "why"), ALLOWED)
def test_public_addresses_are_allowed(ip: str, why: str) -> None:
    guard = AddressGuard()
    assert guard.is_allowed(ip) is True, why
    guard.check(ip)  # does not raise


def test_address_objects_are_accepted_as_well_as_strings() -> None:
    guard = AddressGuard()
    assert guard.is_allowed(IPv4Address("8.8.8.8")) is True
    assert guard.is_allowed(IPv4Address("10.0.0.1")) is False
    assert guard.is_allowed(IPv6Address("2606:4700:4700::1111")) is True
    assert guard.is_allowed(IPv6Address("::ffff:a00:1")) is False


ALLOW_LIST_CASES = [
    # (allowed networks, address, expected)
    (["127.0.0.1/32"], "127.0.0.1", True),
    (["127.0.0.1/32"], "127.0.0.2", False),
    (["127.0.0.1/32"], "::ffff:127.0.0.1", True),  # same destination, mapped form
    (["127.0.0.1/32"], "::1", False),
    (["::1/128"], "::1", True),
    (["::1/128"], "127.0.0.1", False),
    (["10.0.0.0/8"], "10.1.2.3", True),
    (["10.0.0.0/8"], "172.16.0.1", False),
    (["10.0.0.0/8"], "169.254.169.254", False),
    (["10.0.0.0/8", "192.168.0.0/16"], "192.168.7.7", True),
    (["fd00::/8"], "fd00:ec2::254", True),  # the operator explicitly asked for it
    (["10.0.0.0/8"], "8.8.8.8", True),  # the allow-list adds, it does not restrict
]


@pytest.mark.parametrize(("networks", "ip", "expected"), ALLOW_LIST_CASES)
def test_allow_list_opens_exactly_its_networks(
    networks: list[str], ip: str, expected: bool
) -> None:
    guard = AddressGuard([ip_network(n) for n in networks])
    assert guard.is_allowed(ip) is expected


def test_allowed_networks_are_kept() -> None:
    networks: list[IPv4Network | IPv6Network] = [
        IPv4Network("127.0.0.1/32"),
        IPv6Network("::1/128"),
    ]
    assert AddressGuard(networks).allowed_networks == tuple(networks)


def test_blocked_address_names_the_address_and_host_and_fits_aiohttp() -> None:
    guard = AddressGuard()
    with pytest.raises(BlockedAddress) as caught:
        guard.check("10.0.0.1", host="evil.test")
    error = caught.value
    assert error.address == "10.0.0.1"
    assert error.host == "evil.test"
    assert "10.0.0.1" in str(error)
    assert "evil.test" in str(error)
    # an OSError so aiohttp's connector wraps it like a lookup failure; a HooklineError for us
    assert isinstance(error, OSError)
    assert isinstance(error, HooklineError)
    assert error.errno is None


def test_blocked_address_says_how_to_allow_it_and_cuts_a_long_host() -> None:
    assert str(BlockedAddress("10.0.0.1", host="evil.test")) == (
        "refused to connect to 10.0.0.1 for evil.test: not a public address "
        "(to allow it, add its network to ALLOWED_NETWORKS)"
    )
    longest = BlockedAddress("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", host="h" * 253)
    assert len(str(longest)) <= 200  # the sender's error_detail limit: the hint survives
    assert "h" * 47 + "…" in str(longest)
    assert str(longest).endswith("ALLOWED_NETWORKS)")


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("fd00::1", False),
        ("localhost", False),  # a name, not an address
    ],
)
def test_is_loopback(ip: str, expected: bool) -> None:
    assert is_loopback(ip) is expected


EMBEDDED_CASES = [
    ("::ffff:10.0.0.1", "10.0.0.1"),
    ("::ffff:0:10.0.0.1", "10.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
    ("2002:808:808::1", "8.8.8.8"),
    ("2606:4700:4700::1111", None),
    ("fd00:ec2::254", None),
]


@pytest.mark.parametrize(("ip", "inner"), EMBEDDED_CASES)
def test_embedded_ipv4_is_unwrapped(ip: str, inner: str | None) -> None:
    found = embedded_ipv4(IPv6Address(ip))
    assert (str(found) if found is not None else None) == inner


@given(st.ip_addresses(v=4))
def test_mapped_and_nat64_forms_agree_with_their_ipv4(address: IPv4Address) -> None:
    mapped = IPv6Address(f"::ffff:{address}")
    nat64 = IPv6Address(f"64:ff9b::{address}")
    assert is_public(mapped) == is_public(address)
    assert is_public(nat64) == is_public(address)


@given(st.ip_addresses(v=4, network="10.0.0.0/8") | st.ip_addresses(v=4, network="127.0.0.0/8"))
def test_no_private_or_loopback_ipv4_is_ever_public(address: IPv4Address) -> None:
    assert is_public(address) is False
    assert AddressGuard().is_allowed(address) is False


def test_remembered_verdicts_are_the_same_and_stay_bounded() -> None:
    # Given a guard that allows one loopback network
    guard = AddressGuard([ip_network("127.0.0.1/32")])

    # When it is asked about the same texts again, and about more texts than it remembers
    first = [guard.is_allowed(ip) for ip in ("127.0.0.1", "127.0.0.2", "8.8.8.8", "nope")]
    again = [guard.is_allowed(ip) for ip in ("127.0.0.1", "127.0.0.2", "8.8.8.8", "nope")]
    for n in range(VERDICTS_MAX + 10):
        guard.is_allowed(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")

    # Then the answers do not change, and its memory has a ceiling
    assert first == again == [True, False, True, False]
    assert len(guard._verdicts) <= VERDICTS_MAX
    assert guard.is_allowed("127.0.0.1")
    assert not guard.is_allowed("10.0.0.1")

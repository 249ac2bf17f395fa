"""The SSRF guard: which IP addresses a webhook may be delivered to.

An address is allowed when it lies inside one of the operator's ``allowed_networks``, or when it is
a public unicast address. "Public" is decided on the address the packets really go to: IPv6 forms
that carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-translated ``::ffff:0:a.b.c.d``,
NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) are judged by the IPv4 address inside them.

The refused ranges are listed here (IANA special-purpose registries) rather than taken only from
``ipaddress``'s ``is_global``, whose tables change between Python releases (3.11 calls
multicast, ``fec0::/10``, ``3fff::/20`` and ``64:ff9b::/96`` global); both must agree that an
address is public.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Final

from hookline.errors import HooklineError

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


def _networks4(*cidrs: str) -> tuple[IPv4Network, ...]:
    return tuple(IPv4Network(cidr) for cidr in cidrs)


def _networks6(*cidrs: str) -> tuple[IPv6Network, ...]:
    return tuple(IPv6Network(cidr) for cidr in cidrs)


REFUSED_IPV4: Final = _networks4(
    "0.0.0.0/8",  # "this network", includes the unspecified 0.0.0.0
    "10.0.0.0/8",  # private (RFC 1918)
    "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local, includes the cloud metadata service 169.254.169.254
    "172.16.0.0/12",  # private (RFC 1918)
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation (TEST-NET-1)
    "192.88.99.0/24",  # deprecated 6to4 relay anycast
    "192.168.0.0/16",  # private (RFC 1918)
    "198.18.0.0/15",  # benchmarking (RFC 2544)
    "198.51.100.0/24",  # documentation (TEST-NET-2)
    "203.0.113.0/24",  # documentation (TEST-NET-3)
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, includes the broadcast 255.255.255.255
)

REFUSED_IPV6: Final = _networks6(
    "::/8",  # reserved: unspecified, loopback, deprecated IPv4-compatible ::a.b.c.d
    "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215)
    "100::/64",  # discard-only
    "2001::/23",  # IETF protocol assignments: Teredo, benchmarking 2001:2::/48, ORCHID
    "2001:db8::/32",  # documentation
    "3fff::/20",  # documentation (RFC 9637)
    "5f00::/16",  # SRv6 segment identifiers (RFC 9602)
    "fc00::/7",  # unique local, includes the AWS metadata service fd00:ec2::254
    "fe80::/10",  # link-local
    "fec0::/10",  # deprecated site-local
    "ff00::/8",  # multicast
)

_NAT64: Final = IPv6Network("64:ff9b::/96")
_IPV4_TRANSLATED: Final = IPv6Network("::ffff:0:0:0/96")


class BlockedAddress(HooklineError, OSError):
    """A destination the address guard refuses.

    It is an ``OSError`` so that, raised by a resolver, aiohttp's connector wraps it like any other
    lookup failure (``ClientConnectorDNSError``, with this error as ``os_error`` and ``__cause__``)
    and the sender can tell it apart from a real network problem.
    """

    def __init__(self, address: str, *, host: str | None = None) -> None:
        where = f" for {_shortened(host)}" if host is not None and host != address else ""
        super().__init__(
            f"refused to connect to {address}{where}: not a public address "
            "(to allow it, add its network to ALLOWED_NETWORKS)"
        )
        self.address = address
        self.host = host


HOST_IN_MESSAGE_MAX_CHARS: Final = 48
"""A long host name is cut in ``BlockedAddress``'s message, so the hint after it survives the
200-character ``error_detail``."""


def _shortened(host: str) -> str:
    if len(host) <= HOST_IN_MESSAGE_MAX_CHARS:
        return host
    return host[: HOST_IN_MESSAGE_MAX_CHARS - 1] + "…"


def parse_address(ip: str | IPAddress) -> IPAddress | None:
    """``ip`` as an address object, or ``None`` when it is not an IP address at all."""
    if isinstance(ip, IPv4Address | IPv6Address):
        return ip
    text = ip.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address that packets to ``address`` really reach, for the forms that carry one."""
    if (mapped := address.ipv4_mapped) is not None:
        return mapped
    if address in _IPV4_TRANSLATED or address in _NAT64:
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    return address.sixtofour


def is_loopback(ip: str | IPAddress) -> bool:
    """Whether ``ip`` is a loopback address (an IPv6 form carrying one counts)."""
    address = parse_address(ip)
    if isinstance(address, IPv6Address):
        address = embedded_ipv4(address) or address
    return address is not None and address.is_loopback


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is a public unicast address (no allow-list applied)."""
    if isinstance(address, IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public(inner)
        refused: Iterable[IPNetwork] = REFUSED_IPV6
    else:
        refused = REFUSED_IPV4
    if any(address in network for network in refused):
        return False
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


VERDICTS_MAX: Final = 4096
"""Most address texts an ``AddressGuard`` remembers its verdict on."""


class AddressGuard:
    """Decides whether an IP address may be connected to: public, or inside an allowed network."""

    def __init__(self, allowed_networks: Sequence[IPNetwork] = ()) -> None:
        self._allowed: tuple[IPNetwork, ...] = tuple(allowed_networks)
        self._verdicts: dict[str, bool] = {}
        """Verdicts on address texts already seen (the allow-list never changes): an endpoint
        URL with an IP literal is checked on every attempt. Bounded by ``VERDICTS_MAX``."""

    @property
    def allowed_networks(self) -> tuple[IPNetwork, ...]:
        return self._allowed

    def is_allowed(self, ip: str | IPAddress) -> bool:
        """Whether ``ip`` may be connected to. Anything that is not an IP address is refused."""
        if not isinstance(ip, str):
            return self._decide(ip)
        verdict = self._verdicts.get(ip)
        if verdict is None:
            if len(self._verdicts) >= VERDICTS_MAX:
                self._verdicts.clear()
            verdict = self._verdicts[ip] = self._decide(ip)
        return verdict

    def _decide(self, ip: str | IPAddress) -> bool:
        address = parse_address(ip)
        if address is None:
            return False
        if self._inside_allowed(address):
            return True
        if isinstance(address, IPv6Address):
            inner = embedded_ipv4(address)
            if inner is not None and self._inside_allowed(inner):
                return True
        return is_public(address)

    def check(self, ip: str | IPAddress, *, host: str | None = None) -> None:
        """Raise ``BlockedAddress`` unless ``ip`` is allowed; ``host`` names it in the message."""
        if not self.is_allowed(ip):
            raise BlockedAddress(str(ip), host=host)

    def _inside_allowed(self, address: IPAddress) -> bool:
        # ``in`` is False across IP versions, so mixed allow-lists need no special case.
        return any(address in network for network in self._allowed)

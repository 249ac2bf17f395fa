"""``WEBHOOK_URL_PATTERN``: the webhook URLs the API takes, as one regular expression.

The pattern is the contract (it is in the OpenAPI document and pydantic enforces it), so a client
can tell a good URL from a bad one without asking: ``http``/``https``; a host that is a DNS name
whose last label starts with a letter, a dotted-quad IPv4 address, or a bracketed IPv6 address
(RFC 3986); an optional port 0-65535; then path, query and fragment in printable ASCII, with
anything else percent-encoded. No ``user:password@`` (credentials go in ``headers``). Everything
the pattern admits also parses as a URL, except a label starting ``xn--`` that is not valid
punycode, which the URL parser refuses after the pattern.
"""

from __future__ import annotations

from typing import Final

_DEC_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4: Final = rf"{_DEC_OCTET}(?:\.{_DEC_OCTET}){{3}}"
_H16: Final = r"[0-9A-Fa-f]{1,4}"
_LS32: Final = rf"(?:{_H16}:{_H16}|{_IPV4})"
_IPV6: Final = "|".join(
    [  # RFC 3986, section 3.2.2
        rf"(?:{_H16}:){{6}}{_LS32}",
        rf"::(?:{_H16}:){{5}}{_LS32}",
        rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
        rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
        rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
        rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
    ]
)
_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_LAST_LABEL: Final = r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
"""Starts with a letter: a last label of digits (or ``0x``...) would make the host an IPv4
number to the URL parser."""
_HOST: Final = rf"(?:(?:{_LABEL}\.)*{_LAST_LABEL}\.?|{_IPV4}|\[(?:{_IPV6})\])"
_PORT: Final = (
    r"(?::(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
)
_REST: Final = r"(?:[/?#][A-Za-z0-9._~!$&'()*+,;=:@/?#%-]*)?"

WEBHOOK_URL_PATTERN: Final = rf"^[hH][tT][tT][pP][sS]?://{_HOST}{_PORT}{_REST}$"

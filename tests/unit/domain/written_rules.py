"""The retry rules as ARCHITECTURE.md and the seed write them, restated for the tables.

Kept apart from the implementation on purpose: the tables compare the code with these sets.
"""

from __future__ import annotations

ALL_STATUSES = range(100, 600)
RETRYABLE_STATUSES = frozenset({408, 429, *range(500, 600)})  # "408, 429, 5xx"
SUCCESS_STATUSES = frozenset(range(200, 300))  # "2xx"
REDIRECT_STATUSES = frozenset(range(300, 400))  # "3xx → redirect, not followed"
RETRYABLE_ERRORS = frozenset({"timeout", "connect", "tls", "invalid_response", "internal"})
PERMANENT_ERRORS = frozenset({"blocked_address", "redirect", "invalid_url"})

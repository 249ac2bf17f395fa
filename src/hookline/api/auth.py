"""Bearer-token authentication for every resource path.

Tokens come from ``runtime.api_tokens`` (``HOOKLINE_API_TOKENS``, or the token
``hookline serve`` generated). The presented token is compared with *every* configured token in
constant time, so neither the answer nor its timing tells which one nearly matched. With no
token configured every request is refused: the API never runs open.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hookline.api.deps import RuntimeDep

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="`Authorization: Bearer <token>`; tokens come from HOOKLINE_API_TOKENS.",
)


def token_matches(presented: str, tokens: Sequence[str]) -> bool:
    """Whether ``presented`` equals one of ``tokens``; always compares against all of them."""
    given = presented.encode("utf-8", "surrogateescape")
    matched = False
    for token in tokens:
        matched |= secrets.compare_digest(given, token.encode("utf-8", "surrogateescape"))
    return matched


async def require_token(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """Pass when the request carries a configured bearer token; 401 otherwise."""
    if credentials is None or not token_matches(credentials.credentials, runtime.api_tokens):
        raise HTTPException(
            status_code=401,
            detail="missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


RequireToken = Depends(require_token)

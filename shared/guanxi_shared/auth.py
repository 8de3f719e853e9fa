"""Identities and roles (docs/architecture.md, "HTTP surface and roles").

The gateway authenticates users (OAuth2 bearer JWT) and forwards the verified identity to services
as a short-lived internal JWT in ``X-Guanxi-Identity``, signed with the internal secret. Services
verify that header themselves and enforce roles on their own routes, so a service reached
directly (not through the gateway) is just as protected. Services calling each other sign a token
with role ``service`` and their own name as subject.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from pydantic import BaseModel

from .problems import Problem

IDENTITY_HEADER = "X-Guanxi-Identity"
INTERNAL_AUDIENCE = "guanxi-internal"
INTERNAL_ISSUER = "guanxi-gateway"


class Role(StrEnum):
    agent = "agent"
    supervisor = "supervisor"
    auditor = "auditor"
    admin = "admin"
    integration = "integration"
    service = "service"  # another Guanxi service, never a person


STAFF = (Role.agent, Role.supervisor, Role.admin)


class Identity(BaseModel):
    subject: str
    roles: list[Role]
    team: str | None = None
    request_id: str | None = None

    def has(self, *roles: Role) -> bool:
        return any(r in self.roles for r in roles)

    @property
    def primary_role(self) -> Role:
        return self.roles[0]


def sign_internal(identity: Identity, secret: str, ttl_seconds: int = 300) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": identity.subject,
        "roles": [str(r) for r in identity.roles],
        "team": identity.team,
        "rid": identity.request_id,
        "iss": INTERNAL_ISSUER,
        "aud": INTERNAL_AUDIENCE,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def service_token(service_name: str, secret: str) -> str:
    return sign_internal(Identity(subject=service_name, roles=[Role.service]), secret)


# Tokens verified lately: (secret, token) -> (identity, expiry). The gateway signs one token per caller for a
# while (it carries no request id), so a service sees the same token again and again; checking its
# signature and claims once is enough until it expires (a pyjwt check costs more than the lookup).
_VERIFIED: OrderedDict[tuple[str, str], tuple[Identity, float]] = OrderedDict()
_VERIFIED_MAX = 4096


def verify_internal(token: str, secret: str) -> Identity:
    key = (secret, token)
    hit = _VERIFIED.get(key)
    if hit is not None and time.time() < hit[1]:
        return hit[0].model_copy()
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience=INTERNAL_AUDIENCE, issuer=INTERNAL_ISSUER,
                            options={"require": ["exp", "sub", "aud", "iss"]})
        identity = Identity(subject=claims["sub"], roles=[Role(r) for r in claims.get("roles", [])],
                            team=claims.get("team"), request_id=claims.get("rid"))
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise Problem(401, "Unauthenticated", f"invalid identity: {exc}") from exc
    if identity.request_id is None:  # per-request tokens would only crowd the cache
        _VERIFIED[key] = (identity.model_copy(), float(claims["exp"]))
        if len(_VERIFIED) > _VERIFIED_MAX:
            _VERIFIED.popitem(last=False)
    return identity


def identity_dependency(secret_of: Callable[[Request], str]) -> Callable[[Request], Awaitable[Identity]]:
    """A FastAPI dependency reading the verified identity from the internal header.

    ``async`` although it never awaits: FastAPI runs a plain ``def`` dependency in a worker thread,
    a thread hop per dependency per request."""

    async def current_identity(request: Request) -> Identity:
        token = request.headers.get(IDENTITY_HEADER)
        if not token:
            raise Problem(401, "Unauthenticated", f"missing {IDENTITY_HEADER} header")
        identity = verify_internal(token, secret_of(request))
        if identity.request_id is None:
            # The request id travels beside the token (X-Request-Id, set by the gateway): it is a
            # correlation id the caller may choose, not a credential, so it is not signed.
            identity.request_id = request.headers.get("x-request-id")
        request.state.identity = identity
        return identity

    return current_identity


def _secret_from_app(request: Request) -> str:
    return str(request.app.state.internal_secret)


current_identity = identity_dependency(_secret_from_app)
CurrentIdentity = Annotated[Identity, Depends(current_identity)]


def require_roles(*roles: Role) -> Callable[..., Awaitable[Identity]]:
    allowed: Iterable[Role] = roles

    # Reads the identity itself rather than through ``CurrentIdentity``: each level of nested
    # dependencies is another round of FastAPI's dependency solving on every request.
    async def check(request: Request) -> Identity:  # async: no worker thread (see above)
        identity = await current_identity(request)
        if not identity.has(*allowed):
            raise Problem(403, "Forbidden", f"role {', '.join(identity.roles)} may not do this; needs one of: "
                          + ", ".join(sorted(str(r) for r in allowed)))
        return identity

    return check

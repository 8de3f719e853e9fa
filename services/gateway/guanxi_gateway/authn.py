"""Authentication: OAuth2 bearer JWTs, checked locally (HS256 secret) or against the identity
provider's JWKS (production). The result is a Guanxi ``Identity`` the services receive signed."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import jwt
from guanxi_shared.auth import Identity, Role
from guanxi_shared.problems import Problem

from .settings import GatewaySettings

# A person's token may never claim to be another Guanxi service.
_GRANTABLE = {r.value: r for r in Role if r is not Role.service}
_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="guanxi"'}


def unauthenticated(detail: str) -> Problem:
    return Problem(401, "Unauthenticated", detail, headers=dict(_BEARER_CHALLENGE))


def roles_from_claims(claims: dict[str, Any], claim_path: str) -> list[Role]:
    value: Any = claims
    for part in claim_path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list):
        return []
    return [_GRANTABLE[r] for r in value if isinstance(r, str) and r in _GRANTABLE]


class TokenVerifier:
    # A client sends the same bearer token with every request until it expires. Its signature and
    # claims are checked once (the costly part); later requests only check that it has not expired
    # (with the same leeway jwt.decode allows). Refused tokens are never remembered.
    MAX_REMEMBERED = 10_000

    def __init__(self, settings: GatewaySettings, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=600, timeout=5) if settings.jwks_url else None
        self._clock = clock
        self._verified: OrderedDict[str, tuple[Identity, float]] = OrderedDict()

    async def verify(self, authorization: str | None) -> Identity:
        if not authorization:
            raise unauthenticated("missing Authorization: Bearer <token>")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthenticated("the Authorization header must be 'Bearer <token>'")
        hit = self._verified.get(token)
        if hit is not None and self._clock() <= hit[1] + self._settings.jwt_leeway_seconds:
            return hit[0].model_copy()
        claims = await self._decode(token)
        roles = roles_from_claims(claims, self._settings.jwt_roles_claim)
        if not roles:
            raise Problem(403, "Forbidden", "the token carries no Guanxi role")
        team = claims.get("team") if isinstance(claims.get("team"), str) else None
        identity = Identity(subject=str(claims["sub"]), roles=roles, team=team)
        self._verified[token] = (identity.model_copy(), float(claims["exp"]))
        if len(self._verified) > self.MAX_REMEMBERED:
            self._verified.popitem(last=False)
        return identity

    async def _decode(self, token: str) -> dict[str, Any]:
        s = self._settings
        options: Any = {"require": ["exp", "sub", "iss", "aud"]}
        try:
            if self._jwks is None:
                key: Any = s.jwt_secret.get_secret_value()
                algorithms = ["HS256"]
            else:
                # PyJWKClient fetches over blocking urllib (cached): keep it off the event loop.
                key = (await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)).key
                algorithms = list(s.jwt_algorithms)
            claims: dict[str, Any] = jwt.decode(token, key, algorithms=algorithms, audience=s.jwt_audience,
                                                issuer=s.jwt_issuer, leeway=s.jwt_leeway_seconds, options=options)
        except jwt.PyJWKClientConnectionError as exc:
            raise Problem(503, "Identity provider unavailable", f"cannot fetch signing keys: {exc}") from exc
        except jwt.PyJWTError as exc:
            raise unauthenticated(f"invalid token: {exc}") from exc
        return claims

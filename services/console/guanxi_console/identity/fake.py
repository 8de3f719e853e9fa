"""``InMemoryIdentityProvider``: an OpenID Connect provider in memory for the console's fast tests. It
signs RS256 tokens with a key it generates, remembers each authorization (the PKCE challenge, the
nonce, who signed in) and checks the verifier at the exchange like a real provider; the tokens are then
verified by the same code as the real client's (``identity.tokens``). Knobs let a test spoil one thing
at a time (another key, another audience, an expired token, an unreachable provider)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from ..domain.oidc import pkce_challenge
from . import tokens
from .port import ProviderMetadata, ProviderRefused, ProviderUnavailable, TokenInvalid, TokenSet

API_AUDIENCE = "guanxi-api"


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    return json.loads(RSAAlgorithm.to_jwk(key.public_key())) | {"kid": kid, "use": "sig", "alg": "RS256"}


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    user: str


@dataclass
class InMemoryIdentityProvider:
    issuer: str = "https://id.example.test"
    client_id: str = "guanxi-console"
    clock: Callable[[], float] = time.time
    users: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "mei": {"sub": "sso-mei", "name": "韩梅 Mei", "email": "mei@example.com", "roles": ["agent"], "team": "team-east"},
        "lu": {"sub": "sso-lu", "name": "Lu 陆", "roles": ["offline_access"]},
    })
    reachable: bool = True
    end_session: bool = True
    token_ttl: int = 3600  # seconds the tokens live
    # What a test may spoil: claims of the next tokens, the key they are signed with.
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    access_token_overrides: dict[str, Any] = field(default_factory=dict)
    sign_with: rsa.RSAPrivateKey | None = None

    def __post_init__(self) -> None:
        self.key = new_rsa_key()
        self.jwks = {"keys": [public_jwk(self.key, "k1")]}
        self.grants: dict[str, Grant] = {}
        self.exchanges = 0

    # -- what the browser would do at the provider

    def authorize(self, url: str, user: str = "mei") -> str:
        """The provider's authorization endpoint: ``user`` signs in at once; the redirect back (with a code)."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        assert query["response_type"] == "code" and query["code_challenge_method"] == "S256", query
        assert "openid" in query["scope"].split(), query
        code = secrets.token_urlsafe(16)
        self.grants[code] = Grant(query["client_id"], query["redirect_uri"], query["code_challenge"], query["nonce"], user)
        return query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"], "iss": self.issuer})

    def deny(self, url: str) -> str:
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        return query["redirect_uri"] + "?" + urlencode({"error": "access_denied", "state": query["state"]})

    # -- the port

    async def metadata(self) -> ProviderMetadata:
        if not self.reachable:
            raise ProviderUnavailable("the provider is down")
        return ProviderMetadata(issuer=self.issuer, authorization_endpoint=f"{self.issuer}/authorize",
                                token_endpoint=f"{self.issuer}/token", jwks_uri=f"{self.issuer}/jwks",
                                end_session_endpoint=f"{self.issuer}/logout" if self.end_session else None)

    async def exchange(self, code: str, verifier: str) -> TokenSet:
        if not self.reachable:
            raise ProviderUnavailable("the provider is down")
        self.exchanges += 1
        grant = self.grants.pop(code, None)
        if grant is None or grant.client_id != self.client_id:
            raise ProviderRefused("invalid_grant", "unknown or used code")
        if pkce_challenge(verifier) != grant.challenge:
            raise ProviderRefused("invalid_grant", "PKCE verification failed")
        return self.tokens_for(grant.user, grant.nonce)

    def tokens_for(self, user: str, nonce: str) -> TokenSet:
        now, ttl = int(self.clock()), self.token_ttl
        person = self.users[user]
        access = {"iss": self.issuer, "aud": API_AUDIENCE, "sub": person["sub"], "iat": now, "exp": now + ttl,
                  "roles": person.get("roles", []), **({"team": person["team"]} if "team" in person else {}),
                  **self.access_token_overrides}
        access_token = self.sign(access)
        id_claims = {"iss": self.issuer, "aud": self.client_id, "sub": person["sub"], "iat": now, "exp": now + ttl,
                     "nonce": nonce, **{k: v for k, v in person.items() if k != "sub"}, **self.id_token_overrides}
        return TokenSet(access_token=access_token, id_token=self.sign(id_claims), expires_in=ttl)

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.sign_with or self.key, algorithm="RS256", headers={"kid": "k1"})

    async def verify_id_token(self, id_token: str, access_token: str) -> dict[str, Any]:
        return tokens.verify_id_token(id_token, access_token, self.jwks, issuer=self.issuer, client_id=self.client_id,
                                      algorithms=("RS256",))

    async def access_token_claims(self, access_token: str) -> dict[str, Any] | None:
        try:
            return tokens.decode(access_token, self.jwks, issuer=self.issuer, audience=None, algorithms=("RS256",),
                                 require=("exp", "sub"))
        except TokenInvalid:
            return None

    async def close(self) -> None:
        return None

"""The console's way to the organisation's OpenID Connect provider, as the handlers see it:
``IdentityProvider`` (discovery, the code exchange at the token endpoint, the verification of its
tokens against the provider's JWKS) and what a call can end in: an answer, a refusal
(``ProviderRefused``: the token endpoint said no, e.g. ``invalid_grant`` for a wrong PKCE verifier),
a token that does not verify (``TokenInvalid``), or an outage (``ProviderUnavailable``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class ProviderUnavailable(Exception):
    """The provider cannot be reached or answers 5xx / nonsense: try again shortly."""


class ProviderRefused(Exception):
    """The token endpoint refused the exchange (4xx ``error``: ``invalid_grant``, ``invalid_client``…)."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description


class TokenInvalid(Exception):
    """A token of the provider failed verification (signature, issuer, audience, expiry, ``azp``, ``at_hash``)."""


@dataclass(frozen=True)
class ProviderMetadata:
    """What ``<issuer>/.well-known/openid-configuration`` says (the parts the console uses)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None = None
    token_endpoint_auth_methods: tuple[str, ...] = ("client_secret_basic",)
    id_token_algorithms: tuple[str, ...] = ("RS256",)


@dataclass(frozen=True)
class TokenSet:
    """The token endpoint's answer."""

    access_token: str
    id_token: str
    expires_in: Any = None


class IdentityProvider(Protocol):
    async def metadata(self) -> ProviderMetadata:
        """The provider's discovery document (cached)."""
        ...

    async def exchange(self, code: str, verifier: str) -> TokenSet:
        """The authorization code and the PKCE verifier for tokens (``ProviderRefused`` when refused)."""
        ...

    async def verify_id_token(self, id_token: str, access_token: str) -> dict[str, Any]:
        """The ID token's claims once its signature (the provider's JWKS), issuer, audience (our client
        id), expiry, ``azp`` and ``at_hash`` check out; ``TokenInvalid`` otherwise. The nonce is the
        caller's to compare (``domain.oidc.check_nonce``)."""
        ...

    async def access_token_claims(self, access_token: str) -> dict[str, Any] | None:
        """The access token's claims when it is a JWT the provider signed (issuer and expiry checked; its
        audience is the API's, the gateway checks it); None for an opaque or unverifiable token."""
        ...

    async def close(self) -> None: ...

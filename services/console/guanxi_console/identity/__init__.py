"""The console's way to the organisation's OpenID Connect provider (production sign-in): ``port`` (the
``IdentityProvider`` protocol and the ways a call ends), ``http`` (``HttpIdentityProvider`` on httpx),
``tokens`` (JWT verification with pyjwt against the provider's JWKS), ``fake``
(``InMemoryIdentityProvider`` for the fast tests; imported from there, not here: it needs no real keys
in production)."""

from __future__ import annotations

from .http import HttpIdentityProvider
from .port import IdentityProvider, ProviderMetadata, ProviderRefused, ProviderUnavailable, TokenInvalid, TokenSet

__all__ = ["HttpIdentityProvider", "IdentityProvider", "ProviderMetadata", "ProviderRefused", "ProviderUnavailable",
           "TokenInvalid", "TokenSet"]

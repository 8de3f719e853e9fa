"""``HttpIdentityProvider``: the real client of the organisation's OpenID Connect provider (httpx):
discovery from ``<issuer>/.well-known/openid-configuration`` (cached for an hour; a stale copy serves
while the provider is unreachable), the provider's JWKS (cached for ten minutes, fetched again when a
token names a key it does not hold: key rotation), and the code exchange at the token endpoint with the
PKCE verifier (client_secret_basic or client_secret_post when a secret is set; a public client sends its
id alone)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from ..settings import ConsoleSettings
from . import tokens
from .port import ProviderMetadata, ProviderRefused, ProviderUnavailable, TokenInvalid, TokenSet

log = logging.getLogger(__name__)
DISCOVERY_TTL_SECONDS = 3600.0
JWKS_TTL_SECONDS = 600.0
# A token naming an unknown key fetches the JWKS again, but not more often than this (no amplification).
JWKS_REFETCH_SECONDS = 30.0


class HttpIdentityProvider:
    def __init__(self, settings: ConsoleSettings, client: httpx.AsyncClient | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not (settings.oidc_issuer and settings.oidc_client_id):
            raise ValueError("OpenID Connect is not configured (CONSOLE_OIDC_ISSUER, CONSOLE_OIDC_CLIENT_ID)")
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret is not None else ""
        self.client_secret = secret or None
        self.redirect_uri = settings.oidc_redirect_uri
        self.algorithms = tuple(settings.oidc_algorithms)
        self.client = client or httpx.AsyncClient(timeout=settings.oidc_timeout, follow_redirects=False,
                                                  headers={"User-Agent": "guanxi-console"})
        self._clock = clock
        self._metadata: ProviderMetadata | None = None
        self._metadata_at = 0.0
        self._jwks: dict[str, Any] | None = None
        self._jwks_at = 0.0
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        await self.client.aclose()

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = await self.client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"{what}: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise ProviderUnavailable(f"{what}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise ProviderUnavailable(f"{what}: not JSON") from exc
        if not isinstance(body, dict):
            raise ProviderUnavailable(f"{what}: not a JSON object")
        return body

    # -- discovery

    async def metadata(self) -> ProviderMetadata:
        now = self._clock()
        if self._metadata is not None and now - self._metadata_at < DISCOVERY_TTL_SECONDS:
            return self._metadata
        async with self._lock:
            if self._metadata is not None and self._clock() - self._metadata_at < DISCOVERY_TTL_SECONDS:
                return self._metadata
            try:
                doc = await self._get_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration", "discovery")
                self._metadata = parse_metadata(doc, self.issuer)
            except ProviderUnavailable:
                if self._metadata is None:
                    raise
                log.warning("the identity provider's discovery document cannot be read: using the cached one")
            self._metadata_at = self._clock()
            return self._metadata

    # -- keys

    async def _keys(self, *, fresh: bool = False) -> dict[str, Any]:
        now = self._clock()
        stale = self._jwks is None or now - self._jwks_at >= JWKS_TTL_SECONDS
        may_refetch = self._jwks is None or now - self._jwks_at >= JWKS_REFETCH_SECONDS
        if self._jwks is not None and not stale and not (fresh and may_refetch):
            return self._jwks
        metadata = await self.metadata()
        try:
            jwks = await self._get_json(metadata.jwks_uri, "jwks")
        except ProviderUnavailable:
            if self._jwks is None:
                raise
            log.warning("the identity provider's keys cannot be read: using the cached ones")
            return self._jwks
        self._jwks, self._jwks_at = jwks, self._clock()
        return jwks

    async def _verified(self, verify: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        try:
            return verify(await self._keys())
        except tokens.UnknownKey:
            return verify(await self._keys(fresh=True))  # rotated keys

    async def verify_id_token(self, id_token: str, access_token: str) -> dict[str, Any]:
        metadata = await self.metadata()
        algorithms = tuple(a for a in self.algorithms if a in metadata.id_token_algorithms) or self.algorithms
        return await self._verified(lambda jwks: tokens.verify_id_token(
            id_token, access_token, jwks, issuer=metadata.issuer, client_id=self.client_id, algorithms=algorithms))

    async def access_token_claims(self, access_token: str) -> dict[str, Any] | None:
        if not tokens.is_jwt(access_token):
            return None
        metadata = await self.metadata()
        try:
            return await self._verified(lambda jwks: tokens.decode(access_token, jwks, issuer=metadata.issuer, audience=None,
                                                                   algorithms=self.algorithms, require=("exp", "sub")))
        except TokenInvalid as exc:
            log.info("the access token is not a JWT this console can verify (%s): roles come from the ID token", exc)
            return None

    # -- the code exchange

    async def exchange(self, code: str, verifier: str) -> TokenSet:
        metadata = await self.metadata()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                "code_verifier": verifier}
        basic: httpx.BasicAuth | None = None
        if self.client_secret is None:
            form["client_id"] = self.client_id
        elif "client_secret_basic" in metadata.token_endpoint_auth_methods or \
                "client_secret_post" not in metadata.token_endpoint_auth_methods:
            # RFC 6749 2.3.1: the id and the secret are form-encoded before they go into Basic.
            basic = httpx.BasicAuth(quote(self.client_id, safe=""), quote(self.client_secret, safe=""))
        else:
            form |= {"client_id": self.client_id, "client_secret": self.client_secret}
        try:
            headers = {"Accept": "application/json"}
            response = await (self.client.post(metadata.token_endpoint, data=form, headers=headers) if basic is None else
                              self.client.post(metadata.token_endpoint, data=form, headers=headers, auth=basic))
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"token endpoint: {type(exc).__name__}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ProviderUnavailable(f"token endpoint: HTTP {response.status_code}, not a JSON object")
        if response.status_code in (400, 401, 403):
            raise ProviderRefused(str(body.get("error") or response.status_code), str(body.get("error_description") or ""))
        if response.status_code != 200:
            raise ProviderUnavailable(f"token endpoint: HTTP {response.status_code}")
        return parse_token_response(body)


def parse_metadata(doc: dict[str, Any], issuer: str) -> ProviderMetadata:
    """The discovery document, checked: it must be the configured issuer's (OpenID Connect Discovery 4.3)."""
    if str(doc.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
        raise ProviderUnavailable(f"discovery names the issuer {doc.get('issuer')!r}, not {issuer!r}")
    missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not isinstance(doc.get(k), str)]
    if missing:
        raise ProviderUnavailable(f"discovery lacks {', '.join(missing)}")
    methods = doc.get("token_endpoint_auth_methods_supported")
    algorithms = doc.get("id_token_signing_alg_values_supported")
    end_session = doc.get("end_session_endpoint")
    return ProviderMetadata(
        issuer=str(doc["issuer"]), authorization_endpoint=doc["authorization_endpoint"],
        token_endpoint=doc["token_endpoint"], jwks_uri=doc["jwks_uri"],
        end_session_endpoint=end_session if isinstance(end_session, str) and end_session else None,
        token_endpoint_auth_methods=tuple(str(m) for m in methods) if isinstance(methods, list) else ("client_secret_basic",),
        id_token_algorithms=tuple(str(a) for a in algorithms) if isinstance(algorithms, list) else ("RS256",))


def parse_token_response(body: dict[str, Any]) -> TokenSet:
    access, id_token = body.get("access_token"), body.get("id_token")
    if str(body.get("token_type", "")).lower() != "bearer" or not isinstance(access, str) or not access:
        raise TokenInvalid("the token endpoint gave no bearer access token")
    if not isinstance(id_token, str) or not id_token:
        raise TokenInvalid("the token endpoint gave no ID token (is the scope 'openid' granted?)")
    return TokenSet(access_token=access, id_token=id_token, expires_in=body.get("expires_in"))

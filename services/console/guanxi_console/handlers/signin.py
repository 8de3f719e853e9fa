"""Signing in and out, the session behind a cookie, the language choice, and the sweep of old sessions.

Two ways in: the development roster (local mode only: the console mints a gateway token) and the
organisation's OpenID Connect provider (authorization code + PKCE: the session holds the provider's
access token, which the gateway verifies; the console mints nothing)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import jwt

from .. import domain
from ..domain import Session, StaffMember
from ..domain.oidc import PENDING_TTL, SignInFailed
from ..identity import IdentityProvider, ProviderRefused, ProviderUnavailable, TokenInvalid
from ..settings import LOCALES, ConsoleSettings
from .deps import Deps, SessionEnded, SignInRefused

oidc = domain.oidc


def mint_dev_token(settings: ConsoleSettings, member: StaffMember, now: datetime, ttl: timedelta) -> str:
    """A gateway token signed like ``guanxi_gateway.token.issue_token`` (HS256 with the development
    secret, the gateway's issuer and audience): the gateway checks it like any other."""
    claims: dict[str, Any] = {"sub": member.subject, "roles": [member.role], "iss": settings.dev_jwt_issuer,
                              "aud": settings.dev_jwt_audience, "iat": int(now.timestamp()),
                              "exp": int((now + ttl).timestamp())}
    if member.team:
        claims["team"] = member.team
    return jwt.encode(claims, settings.dev_jwt_secret.get_secret_value(), algorithm="HS256")


async def sign_in_dev(deps: Deps, subject: str, locale: str) -> Session:
    """Local mode only: a member of the sample roster, with a freshly minted token."""
    if not deps.settings.dev_sign_in_allowed:
        raise SignInRefused("the development sign-in is off (production signs in through OpenID Connect)")
    member = domain.roster_member(subject)
    if member is None:
        raise SignInRefused(f"{subject!r} is not on the development roster")
    now = deps.clock.now()
    ttl = timedelta(hours=deps.settings.session_max_hours)
    session = Session(id=secrets.token_urlsafe(32), subject=member.subject, name=member.name, roles=[member.role],
                      team=member.team, token=mint_dev_token(deps.settings, member, now, ttl), token_expires_at=now + ttl,
                      created_at=now, last_seen=now, locale=locale if locale in LOCALES else deps.settings.default_locale,
                      timezone=deps.settings.default_timezone)
    await deps.store.put_session(session)
    return session


def _provider(deps: Deps) -> IdentityProvider:
    if deps.identity is None or not deps.settings.oidc_configured:
        raise SignInFailed("not_configured")
    return deps.identity


async def start_oidc_sign_in(deps: Deps, browser: str, next_path: str, locale: str) -> str:
    """A new sign-in through the provider: its state, nonce and PKCE verifier kept in the store (under
    the browser's cookie and the state); where to send the browser (the authorization endpoint)."""
    provider = _provider(deps)
    try:
        metadata = await provider.metadata()
    except ProviderUnavailable as exc:
        raise SignInFailed("unreachable", str(exc)) from exc
    pending = oidc.new_pending(next_path, locale if locale in LOCALES else deps.settings.default_locale, deps.clock.now())
    await deps.store.put_pending(oidc.pending_key(browser, pending.state), pending)
    settings = deps.settings
    return oidc.authorization_url(metadata.authorization_endpoint, client_id=str(settings.oidc_client_id),
                                  redirect_uri=settings.oidc_redirect_uri, scopes=settings.oidc_scope_list, pending=pending)


async def complete_oidc_sign_in(deps: Deps, browser: str | None, params: dict[str, str]) -> tuple[Session, str]:
    """The provider's answer at the callback: the pending sign-in of this browser and state (used up),
    the code exchanged with its verifier, the ID token verified (signature, issuer, audience, expiry,
    nonce), the person from the claims. Only then a session, holding the provider's access token until
    it expires; (session, where to go). Any failure: ``SignInFailed`` and nobody is signed in."""
    provider = _provider(deps)
    now = deps.clock.now()
    state = params.get("state") or ""
    pending = await deps.store.take_pending(oidc.pending_key(browser, state)) if browser and state else None
    code = oidc.check_answer(params, pending, now, str(deps.settings.oidc_issuer))
    assert pending is not None  # check_answer refuses an answer without one
    try:
        tokens = await provider.exchange(code, pending.verifier)
        id_claims = await provider.verify_id_token(tokens.id_token, tokens.access_token)
        access_claims = await provider.access_token_claims(tokens.access_token)
    except ProviderUnavailable as exc:
        raise SignInFailed("unreachable", str(exc)) from exc
    except ProviderRefused as exc:
        raise SignInFailed("refused", str(exc)) from exc
    except TokenInvalid as exc:
        raise SignInFailed("bad_token", str(exc)) from exc
    oidc.check_nonce(id_claims, pending.nonce)
    person = oidc.person_from_claims(id_claims, access_claims, deps.settings.oidc_roles_claim)
    expires = oidc.token_expiry(now, tokens.expires_in, access_claims, id_claims)
    if expires <= now:
        raise SignInFailed("bad_token", "the access token has already expired")
    session = Session(id=secrets.token_urlsafe(32), subject=person.subject, name=person.name, roles=person.roles,
                      team=person.team, token=tokens.access_token, token_expires_at=expires, created_at=now, last_seen=now,
                      locale=pending.locale, timezone=deps.settings.default_timezone, id_token=tokens.id_token)
    await deps.store.put_session(session)
    return session, oidc.landing(pending.next, person.roles)


async def provider_sign_out_url(deps: Deps, session: Session | None) -> str | None:
    """Where to send a person signed in through the provider once the console session has ended: the
    provider's ``end_session_endpoint`` when it advertises one (None otherwise, or when it cannot be asked)."""
    if session is None or session.id_token is None or deps.identity is None or not deps.settings.oidc_configured:
        return None
    try:
        metadata = await deps.identity.metadata()
    except ProviderUnavailable:
        return None
    if not metadata.end_session_endpoint:
        return None
    return oidc.end_session_url(metadata.end_session_endpoint, id_token=session.id_token,
                                client_id=str(deps.settings.oidc_client_id),
                                post_logout_redirect_uri=deps.settings.oidc_post_logout_uri)


async def current_session(deps: Deps, session_id: str | None) -> Session | None:
    """The session behind a cookie (its last use written at most once a minute); ``SessionEnded`` when
    it existed but may no longer be used."""
    if not session_id:
        return None
    session = await deps.store.get_session(session_id)
    if session is None:
        return None
    now = deps.clock.now()
    state = domain.session_state(session, now, deps.settings.session_idle_minutes, deps.settings.session_max_hours)
    if state != "active":
        await deps.store.delete_session(session.id)
        raise SessionEnded(state)
    if domain.needs_touch(session, now):
        session.last_seen = now
        await deps.store.put_session(session)
    return session


async def sign_out(deps: Deps, session: Session | None) -> None:
    if session is not None:
        await deps.store.delete_session(session.id)


async def choose_locale(deps: Deps, session: Session | None, locale: str) -> str:
    chosen = locale if locale in LOCALES else deps.settings.default_locale
    if session is not None:
        session.locale = chosen
        await deps.store.put_session(session)
    return chosen


async def sweep_sessions(deps: Deps) -> int:
    """Forget sessions nobody used for the idle time (and those whose token ran out), and sign-ins the
    provider never answered: a periodic pass."""
    now = deps.clock.now()
    swept = await deps.store.sweep_sessions(now - timedelta(minutes=deps.settings.session_idle_minutes))
    return swept + await deps.store.sweep_pending(now - PENDING_TTL)

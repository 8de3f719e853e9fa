"""Signing in and out, the session behind a cookie, the language choice, and the sweep of old sessions."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import jwt

from .. import domain
from ..domain import Session, StaffMember
from ..settings import LOCALES, ConsoleSettings
from .deps import Deps, SessionEnded, SignInRefused


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
    """Forget sessions nobody used for the idle time (and those whose token ran out): a periodic pass."""
    return await deps.store.sweep_sessions(deps.clock.now() - timedelta(minutes=deps.settings.session_idle_minutes))

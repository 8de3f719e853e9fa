"""Who is signed in, pure: the session kept on the server, why it can no longer be used, and the
development roster of sample staff (local mode only)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

# A page view writes the session's last use at most this often (not on every request).
TOUCH_EVERY = timedelta(seconds=60)


# ------------------------------------------------------------------------------------------ roster


@dataclass(frozen=True)
class StaffMember:
    subject: str
    name: str  # as the person writes it
    role: Literal["agent", "supervisor", "admin", "auditor"]
    team: str | None = None


# Sample staff of the development sign-in (local mode only). Two teams of agents, a supervisor, an
# admin and an auditor: enough to see what each role may and may not do.
ROSTER: tuple[StaffMember, ...] = (
    StaffMember("alice", "Alice 王丽", "agent", "team-east"),
    StaffMember("bob", "Bob 李博", "agent", "team-east"),
    StaffMember("chen", "陈晨 Chen", "agent", "team-west"),
    StaffMember("dong", "董冬 Dong", "agent", "team-west"),
    StaffMember("sue", "Sue 苏珊", "supervisor", "team-east"),
    StaffMember("adam", "Adam 安达", "admin"),
    StaffMember("audrey", "Audrey 欧丽", "auditor"),
)


def roster_member(subject: str) -> StaffMember | None:
    return next((m for m in ROSTER if m.subject == subject), None)


# ------------------------------------------------------------------------------------------ sessions


@dataclass
class Session:
    """A signed-in person, kept on the server: the browser holds only the random ``id`` (an HttpOnly
    cookie). The gateway bearer ``token`` (minted for the roster in local mode, the provider's access
    token in production) never leaves the console."""

    id: str
    subject: str
    name: str
    roles: list[str]
    team: str | None
    token: str
    token_expires_at: datetime
    created_at: datetime
    last_seen: datetime
    locale: str
    timezone: str
    # Signed in through the OpenID Connect provider: its ID token, the hint of the sign-out at the provider.
    id_token: str | None = None

    def has(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)


SessionState = Literal["active", "idle", "too_old", "token_expired"]


def session_state(session: Session, now: datetime, idle_minutes: int, max_hours: int) -> SessionState:
    """Why a session can no longer be used (or ``active``): each leads back to the sign-in page."""
    if now >= session.token_expires_at:
        return "token_expired"
    if now - session.created_at >= timedelta(hours=max_hours):
        return "too_old"
    if now - session.last_seen >= timedelta(minutes=idle_minutes):
        return "idle"
    return "active"


def needs_touch(session: Session, now: datetime) -> bool:
    return now - session.last_seen >= TOUCH_EVERY


def session_key(session_id: str) -> str:
    """What the store keys a session by: a digest of the cookie's value, so that reading the store does
    not give anyone a cookie to sign in with."""
    return hashlib.sha256(session_id.encode()).hexdigest()

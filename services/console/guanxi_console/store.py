"""What the console keeps itself, in its own MongoDB database like every service: the signed-in
people's sessions, the sign-ins waiting for the identity provider's answer (state, nonce, PKCE verifier:
never in the browser) and each person's saved queue views. Everything else it reads through the gateway.

``ConsoleStore`` is the port the handlers use; ``MongoConsoleStore`` its implementation on PyMongo's
asyncio API; ``InMemoryConsoleStore`` the fake of the fast tests, with the same behaviour (one
contract suite runs on both: ``tests/test_console_store.py``).

A session is stored under a digest of its cookie value (``domain.session_key``), never the value
itself: reading the database gives no one a cookie to sign in with. It holds the person's gateway
token (needed to call the API on their behalf), so the database is as sensitive as the token."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Protocol

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from .domain import SavedView, Session, session_key
from .domain.oidc import PendingSignIn

SESSIONS = "sessions"
SIGNINS = "signins"
VIEWS = "views"


class ConsoleStore(Protocol):
    async def ensure_indexes(self) -> None: ...

    # -- sessions

    async def get_session(self, session_id: str) -> Session | None: ...

    async def put_session(self, session: Session) -> None: ...

    async def delete_session(self, session_id: str) -> None: ...

    async def sweep_sessions(self, before: datetime) -> int:
        """Forget sessions last used before ``before``, or whose token ran out by then; how many."""
        ...

    # -- sign-ins waiting for the identity provider (``domain.oidc.pending_key``)

    async def put_pending(self, key: str, pending: PendingSignIn) -> None: ...

    async def take_pending(self, key: str) -> PendingSignIn | None:
        """The pending sign-in under ``key``, removed: each can be completed once."""
        ...

    async def sweep_pending(self, before: datetime) -> int:
        """Forget sign-ins started before ``before`` (never completed); how many."""
        ...

    # -- saved queue views

    async def views(self, owner: str) -> list[SavedView]:
        """The person's saved views, by name."""
        ...

    async def save_view(self, owner: str, name: str, query: str, now: datetime) -> SavedView:
        """Save ``query`` under ``name`` (a view of that name is replaced: same id)."""
        ...

    async def delete_view(self, owner: str, view_id: str) -> bool: ...


def view_id(owner: str, name: str) -> str:
    return hashlib.sha256(f"{owner}\x00{name}".encode()).hexdigest()[:24]


def _session_doc(session: Session) -> dict[str, Any]:
    return {"subject": session.subject, "name": session.name, "roles": list(session.roles), "team": session.team,
            "token": session.token, "token_expires_at": session.token_expires_at, "created_at": session.created_at,
            "last_seen": session.last_seen, "locale": session.locale, "timezone": session.timezone,
            "id_token": session.id_token}


def _session(session_id: str, doc: dict[str, Any]) -> Session:
    return Session(id=session_id, subject=doc["subject"], name=doc["name"], roles=list(doc["roles"]), team=doc.get("team"),
                   token=doc["token"], token_expires_at=doc["token_expires_at"], created_at=doc["created_at"],
                   last_seen=doc["last_seen"], locale=doc["locale"], timezone=doc["timezone"], id_token=doc.get("id_token"))


def _pending_doc(pending: PendingSignIn) -> dict[str, Any]:
    return {"state": pending.state, "nonce": pending.nonce, "verifier": pending.verifier, "next": pending.next,
            "locale": pending.locale, "created_at": pending.created_at}


def _pending(doc: dict[str, Any]) -> PendingSignIn:
    return PendingSignIn(state=doc["state"], nonce=doc["nonce"], verifier=doc["verifier"], next=doc["next"],
                         locale=doc["locale"], created_at=doc["created_at"])


def _view(doc: dict[str, Any]) -> SavedView:
    return SavedView(id=doc["_id"], owner=doc["owner"], name=doc["name"], query=doc["query"], created_at=doc["created_at"])


class MongoConsoleStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.sessions = db[SESSIONS]
        self.signins = db[SIGNINS]
        self.saved = db[VIEWS]

    async def ensure_indexes(self) -> None:
        await self.sessions.create_index([("last_seen", ASCENDING)])
        await self.sessions.create_index([("token_expires_at", ASCENDING)])
        await self.signins.create_index([("created_at", ASCENDING)])
        await self.saved.create_index([("owner", ASCENDING)])

    async def get_session(self, session_id: str) -> Session | None:
        doc = await self.sessions.find_one({"_id": session_key(session_id)})
        return _session(session_id, doc) if doc else None

    async def put_session(self, session: Session) -> None:
        key = session_key(session.id)
        await self.sessions.replace_one({"_id": key}, {"_id": key, **_session_doc(session)}, upsert=True)

    async def delete_session(self, session_id: str) -> None:
        await self.sessions.delete_one({"_id": session_key(session_id)})

    async def sweep_sessions(self, before: datetime) -> int:
        idle = await self.sessions.delete_many({"last_seen": {"$lt": before}})
        expired = await self.sessions.delete_many({"token_expires_at": {"$lte": before}})
        return int(idle.deleted_count) + int(expired.deleted_count)

    async def put_pending(self, key: str, pending: PendingSignIn) -> None:
        await self.signins.replace_one({"_id": key}, {"_id": key, **_pending_doc(pending)}, upsert=True)

    async def take_pending(self, key: str) -> PendingSignIn | None:
        doc = await self.signins.find_one({"_id": key})
        if doc is None:
            return None
        # Only the request whose delete removed it may use it (two callbacks racing: one wins).
        removed = await self.signins.delete_one({"_id": key})
        return _pending(doc) if removed.deleted_count == 1 else None

    async def sweep_pending(self, before: datetime) -> int:
        result = await self.signins.delete_many({"created_at": {"$lt": before}})
        return int(result.deleted_count)

    async def views(self, owner: str) -> list[SavedView]:
        docs = [d async for d in self.saved.find({"owner": owner})]
        return sorted((_view(d) for d in docs), key=lambda v: (v.name.casefold(), v.id))

    async def save_view(self, owner: str, name: str, query: str, now: datetime) -> SavedView:
        doc = {"_id": view_id(owner, name), "owner": owner, "name": name, "query": query, "created_at": now}
        await self.saved.replace_one({"_id": doc["_id"]}, doc, upsert=True)
        return _view(doc)

    async def delete_view(self, owner: str, view_id: str) -> bool:
        result = await self.saved.delete_one({"_id": view_id, "owner": owner})
        return bool(result.deleted_count)


class InMemoryConsoleStore:
    def __init__(self, max_sessions: int = 50_000, max_pending: int = 10_000) -> None:
        self._sessions: dict[str, dict[str, Any]] = {}
        self._pending: dict[str, dict[str, Any]] = {}
        self._views: dict[str, dict[str, Any]] = {}
        self.max_sessions = max_sessions
        self.max_pending = max_pending

    async def ensure_indexes(self) -> None:
        return None

    async def get_session(self, session_id: str) -> Session | None:
        doc = self._sessions.get(session_key(session_id))
        return _session(session_id, doc) if doc else None

    async def put_session(self, session: Session) -> None:
        key = session_key(session.id)
        if key not in self._sessions and len(self._sessions) >= self.max_sessions:
            oldest = min(self._sessions, key=lambda k: self._sessions[k]["last_seen"])
            del self._sessions[oldest]
        self._sessions[key] = _session_doc(session)

    async def delete_session(self, session_id: str) -> None:
        self._sessions.pop(session_key(session_id), None)

    async def sweep_sessions(self, before: datetime) -> int:
        stale = [k for k, s in self._sessions.items() if s["last_seen"] < before or s["token_expires_at"] <= before]
        for key in stale:
            del self._sessions[key]
        return len(stale)

    async def put_pending(self, key: str, pending: PendingSignIn) -> None:
        if key not in self._pending and len(self._pending) >= self.max_pending:
            del self._pending[min(self._pending, key=lambda k: self._pending[k]["created_at"])]
        self._pending[key] = _pending_doc(pending)

    async def take_pending(self, key: str) -> PendingSignIn | None:
        doc = self._pending.pop(key, None)
        return _pending(doc) if doc else None

    async def sweep_pending(self, before: datetime) -> int:
        old = [k for k, d in self._pending.items() if d["created_at"] < before]
        for key in old:
            del self._pending[key]
        return len(old)

    def pending_docs(self) -> list[dict[str, Any]]:
        return [{"_id": k, **v} for k, v in self._pending.items()]

    async def views(self, owner: str) -> list[SavedView]:
        return sorted((_view(d) for d in self._views.values() if d["owner"] == owner),
                      key=lambda v: (v.name.casefold(), v.id))

    async def save_view(self, owner: str, name: str, query: str, now: datetime) -> SavedView:
        key = view_id(owner, name)
        doc: dict[str, Any] = {"_id": key, "owner": owner, "name": name, "query": query, "created_at": now}
        self._views[key] = doc
        return _view(doc)

    async def delete_view(self, owner: str, view_id: str) -> bool:
        doc = self._views.get(view_id)
        if doc is None or doc["owner"] != owner:
            return False
        del self._views[view_id]
        return True

    def session_count(self) -> int:
        return len(self._sessions)

    def session_docs(self) -> list[dict[str, Any]]:
        """What the store holds (tests check that no cookie value is among it)."""
        return [{"_id": k, **v} for k, v in self._sessions.items()]

"""One contract for the console's store (sessions, sign-ins waiting for the identity provider, saved queue
views), run against the in-memory fake and the Mongo store on real FerretDB."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from guanxi_console.domain import Session, session_key
from guanxi_console.domain.oidc import PendingSignIn, pending_key
from guanxi_console.settings import ConsoleSettings
from guanxi_console.store import ConsoleStore, InMemoryConsoleStore, MongoConsoleStore
from guanxi_shared.store import database, make_mongo_client

# Whole milliseconds: what MongoDB keeps of a time.
NOW = datetime(2026, 11, 26, 10, 0, 0, 123000, tzinfo=UTC)


def session(sid: str, subject: str = "alice", **over: Any) -> Session:
    base = Session(id=sid, subject=subject, name="Alice 王丽", roles=["agent"], team="team-east", token=f"jwt-of-{subject}",
                   token_expires_at=NOW + timedelta(hours=8), created_at=NOW, last_seen=NOW, locale="zh-CN",
                   timezone="Asia/Shanghai")
    return replace(base, **over)


class StoreContract:
    async def test_a_session_is_kept_under_a_digest_of_its_id(self, store: ConsoleStore) -> None:
        assert await store.get_session("nope") is None
        await store.put_session(session("s-1"))
        found = await store.get_session("s-1")
        assert found == session("s-1")
        found.last_seen = NOW + timedelta(minutes=5)  # type: ignore[union-attr]
        found.locale = "en"  # type: ignore[union-attr]
        await store.put_session(found)  # type: ignore[arg-type]
        again = await store.get_session("s-1")
        assert again is not None and again.last_seen == NOW + timedelta(minutes=5) and again.locale == "en"
        await store.delete_session("s-1")
        assert await store.get_session("s-1") is None
        await store.delete_session("s-1")  # twice: nothing to do
        assert session_key("s-1") != "s-1" and len(session_key("s-1")) == 64

    async def test_the_sweep_forgets_idle_and_expired_sessions(self, store: ConsoleStore) -> None:
        await store.put_session(session("fresh", last_seen=NOW + timedelta(minutes=20)))
        await store.put_session(session("idle", last_seen=NOW - timedelta(minutes=40)))
        await store.put_session(session("expired", last_seen=NOW + timedelta(minutes=20),
                                        token_expires_at=NOW - timedelta(minutes=1)))
        assert await store.sweep_sessions(NOW) == 2
        assert await store.get_session("fresh") is not None
        assert await store.get_session("idle") is None and await store.get_session("expired") is None
        assert await store.sweep_sessions(NOW) == 0

    async def test_a_session_of_single_sign_on_keeps_its_id_token(self, store: ConsoleStore) -> None:
        hint = "header.claims.signature"
        await store.put_session(session("s-2", id_token=hint))
        found = await store.get_session("s-2")
        assert found is not None and found.id_token == hint

    async def test_a_pending_sign_in_is_used_once_and_swept_when_never_answered(self, store: ConsoleStore) -> None:
        pending = PendingSignIn(state="st-1", nonce="no-1", verifier="ve-1" * 20, next="/customers/c1", locale="en",
                                created_at=NOW)
        key = pending_key("browser-1", "st-1")
        await store.put_pending(key, pending)
        await store.put_pending(pending_key("browser-1", "st-old"), PendingSignIn(
            state="st-old", nonce="n", verifier="v", next="/queue", locale="zh-CN", created_at=NOW - timedelta(minutes=11)))
        assert await store.take_pending(pending_key("browser-2", "st-1")) is None  # another browser
        assert await store.take_pending(key) == pending
        assert await store.take_pending(key) is None  # once
        assert await store.sweep_pending(NOW - timedelta(minutes=10)) == 1
        assert await store.take_pending(pending_key("browser-1", "st-old")) is None

    async def test_saved_views_belong_to_their_owner_and_a_name_replaces(self, store: ConsoleStore) -> None:
        first = await store.save_view("alice", "紧急", "severity=urgent", NOW)
        await store.save_view("alice", "Phone", "channel=phone", NOW)
        await store.save_view("bob", "紧急", "severity=high", NOW)
        again = await store.save_view("alice", "紧急", "severity=urgent&scope=team", NOW + timedelta(minutes=1))
        assert again.id == first.id
        views = await store.views("alice")
        assert [(v.name, v.query) for v in views] == [("Phone", "channel=phone"), ("紧急", "severity=urgent&scope=team")]
        assert [v.owner for v in views] == ["alice", "alice"]
        assert not await store.delete_view("bob", first.id)  # not his
        assert await store.delete_view("alice", first.id)
        assert not await store.delete_view("alice", first.id)
        assert [v.name for v in await store.views("alice")] == ["Phone"]
        assert [v.query for v in await store.views("bob")] == ["severity=high"]
        assert await store.views("nobody") == []


class TestInMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> ConsoleStore:
        return InMemoryConsoleStore()


class TestMongoStore(StoreContract):
    @pytest.fixture
    async def store(self, make_settings: Callable[..., Any]) -> AsyncIterator[ConsoleStore]:
        settings = make_settings(ConsoleSettings)
        client = make_mongo_client(settings)
        store = MongoConsoleStore(database(client, settings))
        await store.ensure_indexes()
        try:
            yield store
        finally:
            await client.close()

    async def test_no_cookie_value_is_stored(self, store: MongoConsoleStore) -> None:
        await store.put_session(session("the-cookie-value"))
        docs = [d async for d in store.sessions.find({})]
        assert [d["_id"] for d in docs] == [session_key("the-cookie-value")]
        assert "the-cookie-value" not in repr(docs)

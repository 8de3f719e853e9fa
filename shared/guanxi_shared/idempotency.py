"""Consumer idempotency keyed on the CloudEvent id (DESIGN.md: redelivery never doubles an effect).

Use it for effects that are not naturally idempotent: check ``seen`` first, make the effect, then
``remember``. A crash between effect and ``remember`` redelivers the event, so the effect itself
must also be keyed (upsert on a business key, or a conditional update guarded by the event id);
``ProcessedEvents`` then only saves the repeated work. Where the effect is one document update,
put ``applied`` event ids in that document instead (see ``guarded_update``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError


class ProcessedEvents:
    def __init__(self, collection: AsyncCollection[Any]) -> None:
        self.collection = collection

    async def seen(self, event_id: str) -> bool:
        return await self.collection.find_one({"_id": event_id}, {"_id": 1}) is not None

    async def remember(self, event_id: str, **info: Any) -> bool:
        """Record the event as handled; False when it already was."""
        try:
            await self.collection.insert_one({"_id": event_id, "at": datetime.now(UTC), **info})
        except DuplicateKeyError:
            return False
        return True


def guarded_update(event_id: str, update: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Filter and update that apply ``update`` once per event id on one document.

    Returns ``(extra_filter, update)``: merge the filter into the document's filter; a redelivered
    event then matches nothing and changes nothing.
    """
    merged = {k: dict(v) for k, v in update.items()}
    merged.setdefault("$addToSet", {})["applied_events"] = event_id
    return {"applied_events": {"$ne": event_id}}, merged


async def apply_once(collection: AsyncCollection[Any], doc_id: Any, event_id: str, update: dict[str, Any]) -> bool:
    """Apply ``update`` to document ``doc_id`` (created if missing) once per event id.

    Returns False when the event had already been applied. The upsert either matches the
    document not yet touched by this event, or inserts it; when the document exists and already
    has the event, the insert collides on ``_id`` and that collision is the proof of a duplicate.
    """
    guard, merged = guarded_update(event_id, update)
    try:
        await collection.update_one({"_id": doc_id, **guard}, merged, upsert=True)
    except DuplicateKeyError:
        return False
    return True

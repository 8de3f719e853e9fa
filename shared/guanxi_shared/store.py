"""MongoDB access through PyMongo's asyncio API (AsyncMongoClient); never Motor.

The same code runs on MongoDB 7+ and FerretDB 1.24: no transactions, change streams, TTL/text/
partial indexes, collation or arrayFilters; aggregations keep to the stages both support.
"""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from .settings import ServiceSettings

__all__ = ["UPDATES_PER_COMMAND", "DuplicateKeyError", "database", "insert_new", "make_mongo_client", "ping", "pool_size",
           "update_each"]

DUPLICATE_KEY = 11000

# FerretDB 1.24 keeps the SQLite cursor of every matched update of one command open until the command
# ends (a deferred close inside its loop), and its pool holds 100 connections per database: an update
# command with ~100 updates of existing documents waits for a connection forever and wedges the server.
# Measured here: 50 fine, 200 hangs. MongoDB does not care; smaller commands only add round-trips.
UPDATES_PER_COMMAND = 50


def make_mongo_client(settings: ServiceSettings, **overrides: Any) -> AsyncMongoClient[dict[str, Any]]:
    """Create the client; it connects lazily, so nothing happens at construction time."""
    options: dict[str, Any] = {
        "serverSelectionTimeoutMS": 5_000,
        "connectTimeoutMS": 5_000,
        "timeoutMS": None,
        "retryWrites": True,
        "tz_aware": True,
        "appname": f"guanxi-{settings.service_name}",
        # See ServiceSettings.mongodb_max_pool_size: FerretDB loses concurrent updates of one document.
        "maxPoolSize": pool_size(settings),
    }
    options.update(overrides)
    return AsyncMongoClient(settings.mongodb_url, **options)


def pool_size(settings: ServiceSettings) -> int:
    """Connections of the main (writing) pool: 1 in local mode (FerretDB), the driver's default elsewhere."""
    return settings.mongodb_max_pool_size or (1 if settings.environment == "local" else 100)


def database(client: AsyncMongoClient[dict[str, Any]], settings: ServiceSettings) -> AsyncDatabase[dict[str, Any]]:
    return client[settings.mongodb_database]


async def ping(client: AsyncMongoClient[dict[str, Any]]) -> bool:
    try:
        await client.admin.command("ping")
    except Exception:
        return False
    return True


async def insert_new(collection: AsyncCollection[dict[str, Any]], docs: list[dict[str, Any]]) -> set[Any]:
    """Insert all in one round-trip; the ids that already existed (a replay) are returned, untouched.
    An insert keyed by the business key is idempotent, and on FerretDB far cheaper than an upsert."""
    if not docs:
        return set()
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return {docs[e["index"]]["_id"] for e in errors}
    return set()


async def update_each(collection: AsyncCollection[dict[str, Any]], ops: list[UpdateOne]) -> int:
    """Run ``ops`` (one update per document) in as few commands as the store can take
    (``UPDATES_PER_COMMAND`` each), unordered within a command; the number of documents modified."""
    modified = 0
    for start in range(0, len(ops), UPDATES_PER_COMMAND):
        modified += (await collection.bulk_write(ops[start:start + UPDATES_PER_COMMAND], ordered=False)).modified_count
    return modified

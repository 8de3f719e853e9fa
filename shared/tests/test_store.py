"""The store factory: concurrent updates of one document are not lost on the local store."""

from __future__ import annotations

import asyncio

import pytest
from guanxi_shared.settings import ServiceSettings
from guanxi_shared.store import database, make_mongo_client

pytestmark = pytest.mark.integration


class StoreSettings(ServiceSettings):
    service_name = "storecheck"


async def test_concurrent_updates_of_one_document_all_land(make_settings) -> None:
    # FerretDB 1.24 loses such updates when they arrive on several connections; the factory's
    # local-mode pool of one connection serialises them (MongoDB is atomic per document anyway).
    settings = make_settings(StoreSettings)
    client = make_mongo_client(settings)
    try:
        counters = database(client, settings)["counters"]
        await counters.insert_one({"_id": "c", "n": 0, "outbox": {}})

        async def bump(i: int) -> None:
            await counters.update_one({"_id": "c"}, {"$inc": {"n": 1}, "$set": {f"outbox.e{i}": i}})
            await counters.update_one({"_id": "c"}, {"$unset": {f"outbox.e{i}": ""}})

        await asyncio.gather(*(bump(i) for i in range(100)))
        doc = await counters.find_one({"_id": "c"})
        assert doc is not None and doc["n"] == 100 and doc["outbox"] == {}
    finally:
        await client.close()

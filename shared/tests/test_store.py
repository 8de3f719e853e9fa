"""The store factory: concurrent updates of one document are not lost on the local store."""

from __future__ import annotations

import asyncio

import pytest
from guanxi_shared.settings import ServiceSettings
from guanxi_shared.store import database, make_mongo_client
from pymongo import UpdateOne

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


@pytest.mark.parametrize(("by_id", "expected"), [
    ({"_id": "c-17"}, [17]),
    ({"_id": {"$in": ["c-3", "c-17", "c-99"]}}, [3, 17]),
    ({"_id": "c-17", "n": {"$gte": 0}}, [17]),
    ({"_id": {"$in": ["c-3", "c-17"]}, "n": {"$gt": 5}}, [17]),
], ids=["equal", "in", "equal-guarded", "in-guarded"])
async def test_a_lookup_by_id_is_answered_from_the_id_index(make_settings, by_id, expected) -> None:
    # FerretDB 1.24 as published compares `->'$._id'` while its _id index is on `->"_id"`, so every
    # find, update and delete by _id read the whole table (cost grew with the collection); it does
    # not push `$in` down at all, nor an _id beside any other condition (a guarded update). The local
    # build fixes all three (deploy/local/infra.py, FERRETDB_FIXES); this fails on a store without them.
    settings = make_settings(StoreSettings)
    client = make_mongo_client(settings)
    try:
        db = database(client, settings)
        await db["lookups"].insert_many([{"_id": f"c-{i}", "n": i} for i in range(20)] + [{"_id": 3, "n": -3}])
        explained = await db.command("explain", {"find": "lookups", "filter": by_id})
        planner = explained["queryPlanner"]
        if "Plan" in planner:  # FerretDB on SQLite: the rows of EXPLAIN QUERY PLAN
            assert any("USING INDEX" in row and "__id_" in row for row in planner["Plan"]), planner
        else:  # MongoDB: the _id fast path or an index scan, never a collection scan
            assert "COLLSCAN" not in str(planner["winningPlan"]), planner
        found = sorted([d["n"] async for d in db["lookups"].find(by_id)])
        assert found == expected
        # A list the index cannot answer (mixed types) still gets every match, as before.
        assert sorted([d["n"] async for d in db["lookups"].find({"_id": {"$in": ["c-3", 3]}})]) == [-3, 3]
    finally:
        await client.close()


async def test_many_documents_change_in_one_update_and_many_updates_in_one_command(make_settings) -> None:
    # The local FerretDB build writes the documents one update statement changes in one transaction,
    # and closes each statement's cursor when the statement is done (as published, a command of ~100
    # updates held a pooled connection per statement to the end and waited forever). Both must still
    # change exactly what MongoDB changes.
    settings = make_settings(StoreSettings)
    client = make_mongo_client(settings)
    try:
        docs = database(client, settings)["many"]
        await docs.insert_many([{"_id": f"d-{i}", "n": i, "outbox": {f"e{i}": i}} for i in range(300)])
        ids = [f"d-{i}" for i in range(0, 300, 2)]
        result = await docs.update_many({"_id": {"$in": ids}}, {"$unset": {f"outbox.e{i}": "" for i in range(0, 300, 2)},
                                                                 "$inc": {"n": 1000}})
        assert (result.matched_count, result.modified_count) == (150, 150)
        after = {d["_id"]: d async for d in docs.find({})}
        assert all(after[f"d-{i}"] == {"_id": f"d-{i}", "n": i + 1000, "outbox": {}} for i in range(0, 300, 2))
        assert all(after[f"d-{i}"] == {"_id": f"d-{i}", "n": i, "outbox": {f"e{i}": i}} for i in range(1, 300, 2))

        ops = [UpdateOne({"_id": f"d-{i}", "n": i}, {"$set": {"seen": True}}) for i in range(1, 300, 2)]
        bulk = await asyncio.wait_for(docs.bulk_write(ops, ordered=False), timeout=60)
        assert bulk.modified_count == 150
        assert await docs.count_documents({"seen": True}) == 150
    finally:
        await client.close()


@pytest.mark.parametrize(("match", "expected"), [
    ({"customer_id": "c-1"}, ["a", "list", "s-1"]),
    ({"customer_id": {"$in": ["c-1", "c-2"]}}, ["a", "list", "s-1", "s-2"]),
    ({"customer_id": {"$in": ["c-2"]}, "n": {"$gt": 1}}, ["s-2"]),
], ids=["equal", "in", "in-guarded"])
async def test_a_read_by_a_string_field_gets_every_match_and_only_those(make_settings, match, expected) -> None:
    # The local FerretDB build lets SQLite pick the candidate rows of {field: "s"} / {field: {$in: [...]}}
    # instead of decoding every document; rows whose field is an array must stay candidates (an array
    # holding the value matches too), and other types must not match. Same answers as MongoDB.
    settings = make_settings(StoreSettings)
    client = make_mongo_client(settings)
    try:
        db = database(client, settings)
        await db["by_field"].insert_many([
            {"_id": "s-1", "customer_id": "c-1", "n": 1}, {"_id": "s-2", "customer_id": "c-2", "n": 2},
            {"_id": "a", "customer_id": "c-1", "n": 0}, {"_id": "list", "customer_id": ["x", "c-1"], "n": 0},
            {"_id": "nested", "customer_id": {"id": "c-1"}, "n": 0}, {"_id": "number", "customer_id": 1, "n": 0},
            {"_id": "none", "n": 0}, {"_id": "other", "customer_id": "c-3", "n": 5}])
        assert sorted([d["_id"] async for d in db["by_field"].find(match)]) == expected
        explained = await db.command("explain", {"find": "by_field", "filter": match})
        if "Plan" in explained["queryPlanner"]:  # FerretDB: the filter went to SQLite
            assert explained.get("filterPushdown") is True, explained
    finally:
        await client.close()


async def test_an_update_command_sees_its_own_earlier_statements(make_settings) -> None:
    # The local FerretDB build writes the documents of consecutive update statements by _id in one
    # transaction; a statement that could read a document still waiting (the same _id again, a filter
    # not by _id, an upsert) must see the earlier statements' changes, as on MongoDB.
    settings = make_settings(StoreSettings)
    client = make_mongo_client(settings)
    try:
        docs = database(client, settings)["own_writes"]
        await docs.insert_many([{"_id": f"s{i}", "n": i} for i in range(5)])
        result = await docs.bulk_write([
            UpdateOne({"_id": "s1", "n": 1}, {"$inc": {"n": 10}}),
            UpdateOne({"_id": "s1", "n": 11}, {"$inc": {"n": 100}}),  # guarded on the first one's result
            UpdateOne({"_id": "s2"}, {"$set": {"a": 1}}),
            UpdateOne({"a": 1}, {"$set": {"seen_by_field": True}}),  # finds s2 only through the write above
            UpdateOne({"_id": "new"}, {"$set": {"n": -1}}, upsert=True),
            UpdateOne({"_id": "new", "n": -1}, {"$set": {"n": -2}}),
        ], ordered=True)
        assert (result.modified_count, result.upserted_count) == (5, 1)
        assert {d["_id"]: d async for d in docs.find({"_id": {"$in": ["s1", "s2", "new"]}})} == {
            "s1": {"_id": "s1", "n": 111}, "s2": {"_id": "s2", "n": 2, "a": 1, "seen_by_field": True},
            "new": {"_id": "new", "n": -2}}
    finally:
        await client.close()

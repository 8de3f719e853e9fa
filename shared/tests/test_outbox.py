"""``Outbox``: the one way a store writes a change with its events; how they reach Kafka is below it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from guanxi_shared.events import CloudEvent, new_event
from guanxi_shared.runtime import ServiceRuntime
from guanxi_shared.settings import ServiceSettings
from guanxi_shared.testing import eventually


class DemoSettings(ServiceSettings):
    service_name = "demo"


def tier_changed(customer: str, n: int = 0) -> CloudEvent:
    return new_event("customer.tier_changed", customer, {"n": n}, source="demo")


def ids(records: list[Any]) -> list[str]:
    return [json.loads(r.value)["id"] for r in records]


@pytest.fixture
async def runtime(make_settings: Any) -> Any:
    runtime = ServiceRuntime(make_settings(DemoSettings, outbox_poll_seconds=5.0))
    outbox = runtime.outbox_for("customers")
    await runtime.start()
    try:
        yield runtime, outbox, runtime.db["customers"]
    finally:
        await runtime.stop()


async def test_an_update_publishes_its_events_before_returning_and_clears_them_later(runtime: Any, tap: Any) -> None:
    _, outbox, customers = runtime
    sink = await tap("customer.tier_changed")
    event = tier_changed("c-1")
    await outbox.update(customers, {"_id": "c-1"}, {"$set": {"level": "gold"}}, [event], upsert=True)
    # Published before returning: Kafka has it without the polling pass (5 s away) having run.
    await sink.wait_for(lambda t: len(t.records) >= 1, timeout=3, what="the event")
    assert ids(sink.records) == [event.id] and sink.records[0].key == b"c-1"
    assert (await customers.find_one({"_id": "c-1"}))["level"] == "gold"
    await eventually(lambda: customers.count_documents({"outbox": {"$ne": {}}}), lambda n: n == 0, what="entry cleared")


async def test_an_update_that_changes_nothing_publishes_nothing(runtime: Any, tap: Any) -> None:
    _, outbox, customers = runtime
    sink = await tap("customer.tier_changed")
    await customers.insert_one({"_id": "c-1", "level": "silver", "outbox": {}})
    result = await outbox.update(customers, {"_id": "c-1", "level": "gold"}, {"$set": {"level": "platinum"}},
                                 [tier_changed("c-1")])
    assert result.modified_count == 0
    await sink.settle(0.5)
    assert sink.records == []
    assert (await customers.find_one({"_id": "c-1"}))["outbox"] == {}


async def test_an_update_carrying_events_must_name_its_document(runtime: Any) -> None:
    _, outbox, customers = runtime
    with pytest.raises(ValueError, match="_id"):
        await outbox.update(customers, {"level": "gold"}, {"$set": {"x": 1}}, [tier_changed("c-1")])


async def test_an_insert_of_an_existing_key_is_refused_and_announces_nothing(runtime: Any, tap: Any) -> None:
    _, outbox, customers = runtime
    sink = await tap("customer.tier_changed")
    first, replay = tier_changed("c-1", 1), tier_changed("c-1", 2)
    assert await outbox.insert(customers, {"_id": "c-1", "n": 1}, [first]) is True
    assert await outbox.insert(customers, {"_id": "c-1", "n": 2}, [replay]) is False
    await sink.wait_for(lambda t: len(t.records) >= 1, what="the first insert's event")
    await sink.settle(0.5)
    assert ids(sink.records) == [first.id]
    assert (await customers.find_one({"_id": "c-1"}))["n"] == 1


async def test_inside_a_consumer_batch_events_are_handed_over_and_all_go_out(runtime: Any, tap: Any) -> None:
    rt, outbox, customers = runtime
    sink = await tap("customer.tier_changed")
    events = [tier_changed(f"c-{i}", i) for i in range(20)]
    async with rt.relay.holding():  # what EventConsumer does around each batch
        for event in events:
            await outbox.update(customers, {"_id": event.subject}, {"$inc": {"n": 1}}, [event], upsert=True)
        await rt.relay.settle()  # what a rebalance waits for before giving a partition away
        await sink.wait_for(lambda t: len(t.records) >= 20, what="every handed-over event")
    assert sorted(ids(sink.records)) == sorted(e.id for e in events)


async def test_update_each_writes_every_document_and_clears_what_went_out_before_in_the_same_write(
        runtime: Any, tap: Any) -> None:
    rt, outbox, customers = runtime
    sink = await tap("customer.tier_changed")
    first = [tier_changed(f"c-{i}", 1) for i in range(3)]
    for event in first:
        await outbox.insert(customers, {"_id": event.subject, "n": 1}, [event])
    assert rt.relay.deferred_count() == 3  # published, waiting for a quiet moment to be cleared
    second = [tier_changed(f"c-{i}", 2) for i in range(3)]
    modified = await outbox.update_each(customers, [({"_id": e.subject, "n": 1}, {"$set": {"n": 2}}, [e]) for e in second])
    assert modified == 3
    await sink.wait_for(lambda t: len(t.records) >= 6, what="both rounds")
    assert sorted(ids(sink.records)) == sorted(e.id for e in [*first, *second])
    # The second write cleared the first round's entries: only the second round's remain, then none.
    for doc in [d async for d in customers.find({})]:
        assert not {e.id for e in first} & set(doc["outbox"])
    await eventually(lambda: customers.count_documents({"outbox": {"$ne": {}}}), lambda n: n == 0, what="cleared")


async def test_update_each_whose_guard_misses_announces_only_what_was_stored(runtime: Any, tap: Any) -> None:
    _, outbox, customers = runtime
    sink = await tap("customer.tier_changed")
    await customers.insert_many([{"_id": "c-1", "n": 1, "outbox": {}}, {"_id": "c-2", "n": 5, "outbox": {}}])
    landed, missed = tier_changed("c-1"), tier_changed("c-2")
    modified = await outbox.update_each(customers, [({"_id": "c-1", "n": 1}, {"$set": {"n": 2}}, [landed]),
                                                    ({"_id": "c-2", "n": 1}, {"$set": {"n": 2}}, [missed])])
    assert modified == 1
    await sink.wait_for(lambda t: len(t.records) >= 1, what="the stored event")
    await sink.settle(0.5)
    assert ids(sink.records) == [landed.id]
    assert (await customers.find_one({"_id": "c-2"}))["n"] == 5

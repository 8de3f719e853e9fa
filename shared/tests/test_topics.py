"""The partition counts that the per-customer ordering arguments rely on (``SAME_PARTITIONING``)."""

from __future__ import annotations

from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker
from guanxi_shared.messaging import EventConsumer, EventPublisher, make_broker
from guanxi_shared.settings import ServiceSettings
from guanxi_shared.testing import create_topics, delete_topics, eventually
from guanxi_shared.topics import ALL_TOPICS, CATALOGUE, SAME_PARTITIONING

PARTITIONS = {t.name: t.partitions for t in CATALOGUE}


class DemoSettings(ServiceSettings):
    service_name = "demo"


def test_topics_handled_together_have_equal_partition_counts_in_the_catalogue() -> None:
    for group in SAME_PARTITIONING:
        assert all(name in PARTITIONS for name in group), group
        assert len({PARTITIONS[name] for name in group}) == 1, {name: PARTITIONS[name] for name in group}


async def test_two_members_of_a_group_get_the_same_partition_numbers_of_every_topic(make_settings: Any, infra: Any) -> None:
    """Two instances of a service on topics of equal partition count: each holds partition k of all of
    them or of none, so one customer's events on those topics reach one member."""
    settings = make_settings(DemoSettings)
    names = [f"{settings.topic_prefix}group-{n}" for n in ("a", "b")]
    await create_topics(infra.kafka, names, partitions=3)
    brokers = [make_broker(settings) for _ in range(2)]
    consumers = [EventConsumer(b, settings, EventPublisher(settings), {n.removeprefix(settings.topic_prefix): _ignore
                                                                        for n in names}) for b in brokers]
    try:
        for broker in brokers:
            await broker.start()

        async def assignments() -> list[set[tuple[str, int]]]:
            return [{(tp.topic, tp.partition) for tp in _assigned(b)} for b in brokers]

        held = await eventually(assignments, lambda a: all(a) and sum(len(x) for x in a) == 6, timeout=60,
                                what="both members assigned")
        for member in held:
            numbers = {(topic, p) for topic, p in member}
            assert {p for t, p in numbers if t == names[0]} == {p for t, p in numbers if t == names[1]}
    finally:
        for broker in brokers:
            await broker.stop()
        await delete_topics(infra.kafka, names)
    assert len(consumers) == 2


def _assigned(broker: KafkaBroker) -> set[Any]:
    subscriber = next(iter(broker.subscribers))
    consumer = subscriber.consumer  # type: ignore[attr-defined]
    return set(consumer.assignment()) if consumer is not None else set()


async def _ignore(_: Any) -> None:
    return None


async def test_the_running_broker_has_the_catalogue_partition_counts(infra: Any) -> None:
    """What ``deploy/local`` provisioned (and what a platform team declares) matches the catalogue."""
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka)
    await admin.start()
    try:
        described = await admin.describe_topics(list(ALL_TOPICS))
    finally:
        await admin.close()
    found = {d["topic"]: len(d["partitions"]) for d in described if not d.get("error_code")}
    assert found == PARTITIONS

"""Gateway tests need only the topics the gateway publishes to: creating the whole catalogue per test
(and leaving it behind) costs the shared broker hundreds of partitions. Overrides ``topics`` of
``guanxi_shared.testing`` for this folder: four one-partition topics, deleted afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from guanxi_shared.testing import Infra, create_topics, delete_topics
from guanxi_shared.topics import ACCESS_RECORDED, COMPLAINT_RECEIVED, INTERACTION_LOGGED, PURCHASE_COMPLETED

GATEWAY_TOPICS = (COMPLAINT_RECEIVED, INTERACTION_LOGGED, PURCHASE_COMPLETED, ACCESS_RECORDED)


@pytest.fixture
async def topics(infra: Infra, isolation: str) -> AsyncIterator[str]:
    prefix = f"t{isolation}."
    names = [prefix + t for t in GATEWAY_TOPICS]
    await create_topics(infra.kafka, names, partitions=1)
    yield prefix
    await delete_topics(infra.kafka, names)

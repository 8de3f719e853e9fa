"""The gateway restarted under load with ``Idempotency-Key`` retries: one effect per key.

Clients register numbered customers through the gateway (``POST /api/v1/customers``, proxied to the
real customer service), each with its own ``Idempotency-Key``, and retry the same key on connection
errors, 5xx and the "still being handled" 409 until they get a 2xx. Meanwhile the gateway dies three
ways: exiting right after the service answered and before the answer is recorded (the worst moment:
the effect happened, the key is left pending), a SIGKILL at a random point of the stream, and a
SIGTERM. It is restarted each time. At the end every key has a success, the customer service's store
holds exactly one customer per key, and a retry of every key returns the same customer id.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fault_harness import CRASH_CODE, ServiceProcess, free_port
from guanxi_gateway.settings import GatewaySettings
from guanxi_gateway.token import issue_token
from pymongo import AsyncMongoClient

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CUSTOMER = ("guanxi_customer.app:build", "guanxi_customer.settings:CustomerSettings")
GATEWAY = ("guanxi_gateway.app:build", "guanxi_gateway.settings:GatewaySettings")
KEYS = 200
CLIENTS = 8
GIVE_UP_AFTER = 60.0  # seconds of retrying one key: far beyond any restart, so reaching it is a failure


@dataclass
class KeyOutcome:
    """What one client saw for one key over all its attempts."""

    ids: list[str] = field(default_factory=list)  # the customer id of every 2xx
    statuses: Counter[str] = field(default_factory=Counter)  # status codes and connection errors seen
    refused: str | None = None  # an answer that is not worth a retry (a 4xx other than 409/429)
    gave_up: bool = False


@dataclass
class Registrations:
    """N clients registering numbered customers, each retrying its key until it gets a 2xx."""

    base_url: str
    token: str
    tag: str
    outcomes: dict[int, KeyOutcome] = field(default_factory=dict)

    def key(self, n: int) -> str:
        return f"register-{self.tag}-{n:04d}"

    def name(self, n: int) -> str:
        return f"Idem {self.tag} {n:04d}"

    def body(self, n: int) -> dict[str, Any]:
        return {"name": self.name(n), "phone": f"+86138{n:08d}", "email": f"idem{n}@example.com",
                "consents": ["service"], "source": "fault-test"}

    @property
    def succeeded(self) -> int:
        return sum(1 for o in self.outcomes.values() if o.ids)

    async def register(self, client: httpx.AsyncClient, n: int) -> httpx.Response | None:
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": self.key(n)}
        try:
            return await client.post(f"{self.base_url}/api/v1/customers", json=self.body(n), headers=headers)
        except httpx.TransportError as exc:
            self.outcomes[n].statuses[type(exc).__name__] += 1  # gateway down or died mid-request
            return None

    async def answered(self, client: httpx.AsyncClient, n: int) -> httpx.Response | None:
        """The answer to a retry of key ``n`` once it is no longer in progress (409) elsewhere."""
        deadline = asyncio.get_running_loop().time() + GIVE_UP_AFTER
        response = await self.register(client, n)
        while response is not None and response.status_code == 409 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.5)
            response = await self.register(client, n)
        return response

    async def until_success(self, client: httpx.AsyncClient, n: int) -> None:
        outcome = self.outcomes.setdefault(n, KeyOutcome())
        deadline = asyncio.get_running_loop().time() + GIVE_UP_AFTER
        while asyncio.get_running_loop().time() < deadline:
            response = await self.register(client, n)
            if response is not None:
                outcome.statuses[str(response.status_code)] += 1
                if response.is_success:
                    outcome.ids.append(response.json()["id"])
                    return
                if response.status_code not in (409, 429) and response.status_code < 500:
                    outcome.refused = f"{response.status_code} {response.text[:300]}"
                    return
            await asyncio.sleep(0.2)
        outcome.gave_up = True

    async def run(self, numbers: range) -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in numbers:
            queue.put_nowait(n)

        async def client_loop() -> None:
            async with httpx.AsyncClient(timeout=30) as client:
                while not queue.empty():
                    await self.until_success(client, queue.get_nowait())

        await asyncio.gather(*(client_loop() for _ in range(CLIENTS)))


async def wait_until(check: Any, what: str, timeout: float = 180.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def customer_store(infra: Any, isolation: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    yield client[f"fault_customer_{isolation}"]["customers"]
    for database in (f"fault_customer_{isolation}", f"fault_gateway_{isolation}"):
        await client.drop_database(database)
    await client.close()


async def test_gateway_restarted_under_load_with_idempotency_key_retries_has_one_effect_per_key(
        infra: Any, topics: str, isolation: str, customer_store: Any, logs: Any) -> None:
    shared = {"KAFKA_BOOTSTRAP_SERVERS": infra.kafka, "MONGODB_URL": infra.mongodb_url, "GUANXI_TOPIC_PREFIX": topics,
              "MONGODB_MAX_POOL_SIZE": "1"}
    customer = ServiceProcess({**shared, "CUSTOMER_MONGODB_DATABASE": f"fault_customer_{isolation}",
                               "CUSTOMER_CONSUMER_GROUP": f"fault-customer-{isolation}",
                               "CUSTOMER_OUTBOX_POLL_SECONDS": "0.2"},
                              target=CUSTOMER, prefix="CUSTOMER_", log_path=logs / "customer.log")
    nowhere = f"http://127.0.0.1:{free_port()}"  # the other services: not needed, never someone else's
    gateway = ServiceProcess({**shared, "GATEWAY_MONGODB_DATABASE": f"fault_gateway_{isolation}",
                              "GATEWAY_CONSUMER_GROUP": f"fault-gateway-{isolation}",
                              "GATEWAY_CUSTOMER_URL": f"http://127.0.0.1:{customer.port}",
                              **{f"GATEWAY_{s}_URL": nowhere for s in ("COMPLAINTS", "SURVEYS", "NOTIFICATIONS", "AUDIT")},
                              "GATEWAY_RATE_LIMIT_PER_IDENTITY": "1000000", "GATEWAY_RATE_LIMIT_PER_IP": "1000000",
                              # A key left pending by a dead gateway is taken over after this: above the
                              # upstream timeout as required, and longer than a gateway restart on a loaded
                              # machine, so a retry reaches the pending claim (409) before it expires.
                              "GATEWAY_UPSTREAM_TIMEOUT": "4", "GATEWAY_IDEMPOTENCY_LEASE_SECONDS": "20"},
                             target=GATEWAY, prefix="GATEWAY_", log_path=logs / "gateway.log")
    token = issue_token(GatewaySettings(), f"idem-{isolation}", ["agent"])
    clients = Registrations(f"http://127.0.0.1:{gateway.port}", token, isolation)
    try:
        customer.start()
        await customer.ready(timeout=90)
        gateway.start(FAULT_EXIT_BEFORE_RECORDING="40")
        await gateway.ready(timeout=90)

        async def faults() -> list[str]:
            done = []
            # 1. Dies after the 40th answer, before recording it: that key is pending with its effect done.
            assert await gateway.wait_exit(timeout=180) == CRASH_CODE
            done.append(f"exit before recording at {clients.succeeded} successes")
            gateway.start()
            await gateway.ready(timeout=90)
            # 2. SIGKILL wherever the stream happens to be: requests in flight die with it.
            await wait_until(lambda: clients.succeeded >= 90, "90 successes")
            gateway.signal(signal.SIGKILL)
            await gateway.wait_exit(timeout=30)
            done.append(f"SIGKILL at {clients.succeeded} successes")
            gateway.start()
            await gateway.ready(timeout=90)
            # 3. SIGTERM: a clean stop finishes what it has started, then the restart.
            await wait_until(lambda: clients.succeeded >= 140, "140 successes")
            gateway.signal(signal.SIGTERM)
            assert await gateway.wait_exit(timeout=60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
            done.append(f"SIGTERM at {clients.succeeded} successes")
            gateway.start()
            await gateway.ready(timeout=90)
            return done

        fault_task = asyncio.create_task(faults())
        client_task = asyncio.create_task(clients.run(range(KEYS)))
        await asyncio.wait([fault_task, client_task], return_when=asyncio.FIRST_EXCEPTION)
        if fault_task.done() and fault_task.exception():
            client_task.cancel()  # a fault step failed: no point letting the clients spin
        injected = await fault_task
        await client_task

        outcomes = clients.outcomes
        problems = [f"key {n}: gave up after {GIVE_UP_AFTER}s, saw {dict(o.statuses)}" for n, o in outcomes.items()
                    if o.gave_up]
        problems += [f"key {n}: refused {o.refused}" for n, o in outcomes.items() if o.refused]
        assert not problems, f"faults {injected}; keys without a success:\n" + "\n".join(problems[:20])
        first_ids = {n: o.ids[0] for n, o in outcomes.items()}
        assert len(first_ids) == KEYS

        # Exactly one customer per key in the owning service's store, the one its caller was given.
        stored: dict[str, list[str]] = {}
        async for doc in customer_store.find({}, {"name": 1}):
            stored.setdefault(doc["name"], []).append(doc["_id"])
        doubled = {name: ids for name, ids in stored.items() if len(ids) > 1}
        assert not doubled, f"faults {injected}; {len(doubled)} keys had their effect more than once: " \
                            f"{sorted(doubled.items())[:10]}"
        lost = [n for n in range(KEYS) if clients.name(n) not in stored]
        assert not lost, f"faults {injected}; keys answered 2xx without a customer: {lost[:20]}"
        mismatched = {n: (first_ids[n], stored[clients.name(n)]) for n in range(KEYS)
                      if stored[clients.name(n)] != [first_ids[n]]}
        assert not mismatched, f"the customer stored is not the one answered: {list(mismatched.items())[:10]}"
        assert len(stored) == KEYS

        # A retry of a completed key, after all the restarts, gives the same customer again. A key whose
        # answer a killed gateway passed on but never recorded is still pending: 409 until its lease ends,
        # then it runs again and the customer service gives the same customer.
        async with httpx.AsyncClient(timeout=30) as client:
            again = [await clients.answered(client, n) for n in range(KEYS)]
        replays = {n: r for n, r in enumerate(again) if r is not None}
        assert len(replays) == KEYS
        different = {n: (r.status_code, r.text[:200]) for n, r in replays.items()
                     if not r.is_success or r.json()["id"] != first_ids[n]}
        assert not different, f"retries of completed keys answered differently: {list(different.items())[:10]}"
        assert await customer_store.count_documents({}) == KEYS

        # The faults really hit requests in flight: keys needed several attempts, and some were left
        # pending by a dead gateway (each key has one client, so a 409 means an abandoned claim) and
        # were taken over by a retry.
        seen = sum((o.statuses for o in outcomes.values()), Counter())
        print(f"faults {injected}; answers and errors over {KEYS} keys: {dict(seen)}")
        assert any(sum(o.statuses.values()) > 1 for o in outcomes.values()), f"faults {injected} hit no request"
        assert any(o.statuses["409"] for o in outcomes.values()), f"faults {injected} left no key pending"
    finally:
        gateway.stop()
        customer.stop()

"""The console over the in-memory gateway and store, as the fast tests drive it (no infrastructure)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from console_testkit import Console
from guanxi_console.app import build
from guanxi_console.gateway import InMemoryGateway
from guanxi_console.settings import ConsoleSettings
from guanxi_console.store import InMemoryConsoleStore
from guanxi_shared.clock import ManualClock
from guanxi_shared.testing import serving


@pytest.fixture
async def console() -> AsyncIterator[Console]:
    clock = ManualClock(datetime.now(UTC))
    gateway = InMemoryGateway(clock.now())
    store = InMemoryConsoleStore()
    app = build(ConsoleSettings(environment="local"), clock=clock, gateway=gateway, store=store, tracing=False)
    async with serving(app, "http://console") as client:
        yield Console(client, gateway, clock, store)

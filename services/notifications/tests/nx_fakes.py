"""The notifications service's use cases wired to in-memory fakes (store, directory, channels), for the
fast tests: no infrastructure, no network.

The module name is unique on purpose: every service has a ``tests`` folder without ``__init__``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from guanxi_notifications.channels import InboxProvider, RecordingProvider
from guanxi_notifications.directory import InMemoryContactDirectory
from guanxi_notifications.domain import Channel
from guanxi_notifications.domain.delivery import ContactDetails
from guanxi_notifications.handlers import Deps, templates
from guanxi_notifications.settings import NotificationsSettings
from guanxi_notifications.store import InMemoryNotificationStore
from guanxi_shared.clock import ManualClock
from guanxi_shared.events import CloudEvent, new_event

# 11:00 in Shanghai: outside quiet hours.
DAYTIME = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
# 22:00 in Shanghai: quiet hours until 09:00 local = 01:00 UTC next day.
NIGHT = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
MORNING = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
ALL_CONSENTS = {"service": True, "survey": True, "care": True, "marketing": True}


@dataclass
class World:
    deps: Deps
    store: InMemoryNotificationStore
    directory: InMemoryContactDirectory
    email: RecordingProvider
    sms: RecordingProvider
    clock: ManualClock

    async def settle(self) -> None:
        """Wait for the sends started beside the consumer."""
        await self.deps.outgoing.drain(timeout=5)

    def events(self, type: str | None = None) -> list[CloudEvent]:
        return [e for e in self.store.published if type is None or e.type == type]

    def customer(self, customer_id: str, *, name: str = "Ann Lee", email: str | None = None, phone: str | None = None,
                 language: str = "en", timezone: str = "Asia/Shanghai", consents: dict[str, bool] | None = None,
                 opted_out: list[str] | None = None) -> None:
        self.directory.add(ContactDetails(
            customer_id=customer_id, name=name, email=email, phone=phone, language=language, timezone=timezone,
            consents=ALL_CONSENTS if consents is None else consents, channels_opted_out=opted_out or [],
            member_level="gold"))


async def make_world(start: datetime = DAYTIME, **settings: Any) -> World:
    """Seeded templates, email and SMS through recording channels, the in-app inbox in the store."""
    clock = ManualClock(start)
    store = InMemoryNotificationStore()
    directory = InMemoryContactDirectory()
    email, sms = RecordingProvider(), RecordingProvider()
    deps = Deps(NotificationsSettings(**settings), clock, store, directory,
                {Channel.email: email, Channel.sms: sms, Channel.inapp: InboxProvider(store, clock)})
    await templates.seed_templates(deps)
    return World(deps, store, directory, email, sms, clock)


def event(type: str, customer_id: str, data: dict[str, Any], *, event_id: str | None = None) -> CloudEvent:
    return new_event(type, customer_id, data, source="tests", id=event_id)


def complaint_step(customer_id: str, complaint_id: str, status: str = "acknowledged", **extra: Any) -> dict[str, Any]:
    return {"complaint_id": complaint_id, "customer_id": customer_id, "status": status, "actor": "agent-7",
            "at": DAYTIME.isoformat(), "category": "delivery", **extra}


def survey_requested(customer_id: str, survey_id: str, language: str = "en") -> dict[str, Any]:
    return {"survey_id": survey_id, "customer_id": customer_id, "kind": "post_purchase", "language": language,
            "link": f"https://guanxi.example/s/{survey_id}", "expires_at": "2026-12-01T00:00:00+00:00"}

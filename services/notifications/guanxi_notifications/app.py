"""Composition root of the notifications service: the only place that wires things together."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.messaging import EventConsumer
from guanxi_shared.runtime import ServiceRuntime, serve

from .api import notifications_router, templates_router
from .channels import ChannelProvider, EmailProvider, WebhookProvider
from .defaults import SEEDS
from .directory import HttpContactDirectory
from .domain import Channel
from .handlers import Deps, dispatch_loop
from .settings import NotificationsSettings
from .store import InboxProvider, MongoNotificationStore
from .subscribers import event_handlers


def build(settings: NotificationsSettings | None = None, clock: Clock | None = None, *,
          contact_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """Wire the service. ``contact_transport`` lets tests serve the customer-service contract in-process."""
    settings = settings or NotificationsSettings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings)
    runtime.outbox_collections("notifications")
    store = MongoNotificationStore(runtime.db, read_db=runtime.read_db)
    secret = settings.internal_secret.get_secret_value()
    directory = HttpContactDirectory(settings.customer_base_url, secret, timeout=settings.contact_timeout_seconds,
                                     transport=contact_transport)

    webhooks: list[WebhookProvider] = []
    channels: dict[Channel, ChannelProvider] = {
        Channel.email: EmailProvider(
            settings.smtp_host, settings.smtp_port, settings.email_from, username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls, timeout=settings.smtp_timeout_seconds),
        Channel.inapp: InboxProvider(store, clock.now),
    }
    for channel, url in ((Channel.sms, settings.sms_webhook_url), (Channel.push, settings.push_webhook_url)):
        if url:  # a channel without a provider is simply not offered
            provider = WebhookProvider(url, settings.webhook_secret.get_secret_value(),
                                       timeout=settings.webhook_timeout_seconds, attempts=settings.webhook_inline_attempts,
                                       backoff=settings.webhook_inline_backoff_seconds)
            webhooks.append(provider)
            channels[channel] = provider

    deps = Deps(settings, clock, store, directory, channels, runtime.relay)

    @runtime.on_startup
    async def prepare_store() -> None:
        await store.ensure_indexes()
        now = clock.now()
        for seed in SEEDS:
            await store.seed_template({
                "_id": f"{seed.key}:{seed.language}:1", "key": seed.key, "language": seed.language, "version": 1,
                "category": seed.category.value, "subject": seed.subject, "body": seed.body,
                "required_variables": list(seed.required_variables), "description": "seeded default",
                "created_at": now, "created_by": "seed",
            })

    @runtime.on_shutdown
    async def close_clients() -> None:
        await deps.outgoing.drain(timeout=20)
        await directory.close()
        for provider in webhooks:
            await provider.close()

    EventConsumer(runtime.broker, settings, runtime.publisher, event_handlers(deps))

    async def run_dispatcher() -> None:
        await dispatch_loop(deps)

    runtime.background("dispatcher", run_dispatcher)
    app = runtime.http_app([notifications_router, templates_router], title="Guanxi notifications service",
                           description="templates, channels, consent, caps, quiet hours, delivery log")
    app.state.deps = deps
    return app


def main() -> None:
    settings = NotificationsSettings()
    serve(build(settings), settings)

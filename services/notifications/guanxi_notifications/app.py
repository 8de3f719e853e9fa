"""Composition root of the notifications service: the only place that constructs things."""

from __future__ import annotations

from functools import partial

import httpx
from fastapi import FastAPI
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.runtime import ServiceRuntime, serve

from .api import ROUTERS
from .channels import ChannelProvider, EmailProvider, InboxProvider, WebhookProvider
from .directory import HttpContactDirectory
from .domain import Channel
from .handlers import Deps, sending, templates
from .settings import NotificationsSettings
from .store import MongoNotificationStore
from .subscribers import subscribe


def build(settings: NotificationsSettings | None = None, clock: Clock | None = None, *,
          contact_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """Wire the service. ``contact_transport`` lets tests serve the customer-service contract in-process."""
    settings = settings or NotificationsSettings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings)
    store = MongoNotificationStore(runtime.db, runtime.outbox_for("notifications"), read_db=runtime.read_db)
    directory = HttpContactDirectory(settings.customer_base_url, settings.internal_secret.get_secret_value(),
                                     timeout=settings.contact_timeout_seconds, transport=contact_transport)

    webhooks: list[WebhookProvider] = []
    channels: dict[Channel, ChannelProvider] = {
        Channel.email: EmailProvider(
            settings.smtp_host, settings.smtp_port, settings.email_from, username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls, timeout=settings.smtp_timeout_seconds),
        Channel.inapp: InboxProvider(store, clock),
    }
    for channel, url in ((Channel.sms, settings.sms_webhook_url), (Channel.push, settings.push_webhook_url)):
        if url:  # a channel without a provider is simply not offered
            provider = WebhookProvider(url, settings.webhook_secret.get_secret_value(),
                                       timeout=settings.webhook_timeout_seconds, attempts=settings.webhook_inline_attempts,
                                       backoff=settings.webhook_inline_backoff_seconds)
            webhooks.append(provider)
            channels[channel] = provider

    deps = Deps(settings, clock, store, directory, channels)

    @runtime.on_startup
    async def prepare_store() -> None:
        await store.ensure_indexes()
        await templates.seed_templates(deps)

    @runtime.on_shutdown
    async def close_clients() -> None:
        await deps.outgoing.drain(timeout=20)
        await directory.close()
        for provider in webhooks:
            await provider.close()

    subscribe(runtime, deps)
    # Releases held messages and retries when their time comes, and takes over crashed senders' messages.
    runtime.every("dispatcher", settings.dispatch_interval_seconds, partial(sending.dispatch_due, deps))
    return runtime.http_app(ROUTERS, deps=deps, title="Guanxi notifications service",
                            description="templates, channels, consent, caps, quiet hours, delivery log")


def main() -> None:
    settings = NotificationsSettings()
    serve(build(settings), settings)

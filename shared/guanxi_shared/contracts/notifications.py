"""Payloads of the notifications service (in and out)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from .inbound import Contract

Category = Literal["service", "survey", "care", "marketing"]


class NotificationRequested(Contract):
    customer_id: str
    template: str
    category: Category
    variables: dict[str, Any] = Field(default_factory=dict)
    channel: str | None = None  # preferred channel; otherwise the customer's preference
    language: str | None = None


class NotificationOutcome(Contract):
    """notification.sent / notification.failed / notification.suppressed.

    ``notification.suppressed`` is published both for a final suppression (``status`` "suppressed":
    no consent, opted out, erased) and for a hold (``status`` "held": quiet hours or a frequency
    cap; ``held_until`` says when it will be tried again). Never carries a clear address.
    """

    notification_id: str
    customer_id: str
    template: str
    category: Category
    channel: str | None = None
    address_masked: str | None = None
    reason: str | None = None
    at: datetime
    # Optional additions (dataversion 1 stays valid without them).
    status: Literal["sent", "failed", "suppressed", "held"] | None = None
    held_until: datetime | None = None
    language: str | None = None
    template_version: int | None = None
    attempts: int | None = None
    trigger_event_id: str | None = None  # id of the event that asked for this message
    trigger_type: str | None = None

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
    """notification.sent / notification.failed / notification.suppressed."""

    notification_id: str
    customer_id: str
    template: str
    category: Category
    channel: str | None = None
    address_masked: str | None = None
    reason: str | None = None
    at: datetime

"""The public inbound contract (docs/events.md, "Inbound integration contract")."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

_CURRENCY = re.compile(r"^[A-Z]{3}$")


class Contract(BaseModel):
    """Base for event payloads: unknown fields are ignored, times must carry an offset."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


def require_offset(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must be RFC 3339 with a UTC offset")
    return value


class ComplaintChannel(StrEnum):
    phone = "phone"
    email = "email"
    chat = "chat"
    social = "social"
    web = "web"
    sms = "sms"
    app = "app"
    visit = "visit"


class Severity(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class Direction(StrEnum):
    inbound = "inbound"
    outbound = "outbound"


class PurchaseItem(Contract):
    sku: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=500)
    quantity: int = Field(gt=0)
    unit_price: str

    @field_validator("unit_price")
    @classmethod
    def _decimal(cls, v: str) -> str:
        return _decimal_string(v)


def _decimal_string(v: str) -> str:
    try:
        d = Decimal(v)
    except (InvalidOperation, TypeError) as exc:
        raise ValueError("must be a decimal string such as '199.00'") from exc
    if not d.is_finite() or d < 0:
        raise ValueError("must be a finite, non-negative decimal")
    return v


class PurchaseCompleted(Contract):
    order_id: str = Field(min_length=1, max_length=128)
    customer_id: str = Field(min_length=1, max_length=128)
    amount: str
    currency: str
    items: list[PurchaseItem]
    channel: str = Field(min_length=1, max_length=32)
    purchased_at: datetime

    _amount = field_validator("amount")(classmethod(lambda cls, v: _decimal_string(v)))
    _at = field_validator("purchased_at")(classmethod(lambda cls, v: require_offset(v)))

    @field_validator("currency")
    @classmethod
    def _iso4217(cls, v: str) -> str:
        if not _CURRENCY.match(v):
            raise ValueError("must be an ISO 4217 code such as CNY")
        return v

    @property
    def amount_decimal(self) -> Decimal:
        return Decimal(self.amount)


class ComplaintReceived(Contract):
    complaint_id: uuid.UUID | None = None
    external_ref: str | None = Field(default=None, max_length=200)
    customer_id: str = Field(min_length=1, max_length=128)
    channel: ComplaintChannel
    category: str = Field(min_length=1, max_length=100)
    severity: Severity
    description: str = Field(min_length=1, max_length=20_000)
    received_at: datetime
    product: str | None = Field(default=None, max_length=200)
    evidence: list[str] = Field(default_factory=list, max_length=50)

    _at = field_validator("received_at")(classmethod(lambda cls, v: require_offset(v)))


class InteractionLogged(Contract):
    interaction_id: str | None = Field(default=None, max_length=128)
    customer_id: str = Field(min_length=1, max_length=128)
    channel: str = Field(min_length=1, max_length=32)
    direction: Direction
    occurred_at: datetime
    summary: str = Field(min_length=1, max_length=5_000)
    agent_id: str | None = Field(default=None, max_length=128)
    outcome: str | None = Field(default=None, max_length=200)
    kind: str | None = Field(default=None, max_length=64)  # e.g. consultation; optional extension
    urgent: bool | None = None

    _at = field_validator("occurred_at")(classmethod(lambda cls, v: require_offset(v)))

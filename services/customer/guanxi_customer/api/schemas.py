"""HTTP request shapes of the customer service (validation of what people type)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from guanxi_shared.contracts.customer import Purpose
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..domain import INDUSTRIES, SIZES

Kind = Literal["person", "organisation"]
Gender = Literal["female", "male", "other", "unspecified"]
Industry = Literal[INDUSTRIES]  # type: ignore[valid-type]
Size = Literal[SIZES]  # type: ignore[valid-type]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ProfileFields(_Input):
    """Fields of CI-2 a person may set; personal ones are validated in the domain and then sealed."""

    kind: Kind | None = None
    name: str | None = Field(None, min_length=1, max_length=200)
    phone: str | None = Field(None, max_length=32, description="E.164, e.g. +8613812345678")
    email: str | None = Field(None, max_length=254)
    birthday: str | None = Field(None, description="YYYY-MM-DD")
    address: str | None = Field(None, max_length=500)
    id_number: str | None = Field(None, max_length=32)
    gender: Gender | None = None
    occupation: str | None = Field(None, max_length=200)
    company: str | None = Field(None, max_length=200)
    industry: Industry | None = None
    size: Size | None = None
    preferences: dict[str, str] | None = None
    tags: list[str] | None = Field(None, max_length=50)
    language: Literal["zh", "en"] | None = None
    timezone: str | None = Field(None, max_length=64)


class NewCustomer(ProfileFields):
    # An id the order system already uses for this customer: registering it merges the
    # "unregistered" stub that its purchases created (see README, "Unknown customers").
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9._:-]{1,128}$")
    name: str = Field(min_length=1, max_length=200)  # type: ignore[assignment]
    phone: str = Field(max_length=32)  # type: ignore[assignment]
    email: str = Field(max_length=254)  # type: ignore[assignment]
    consents: list[Purpose] = Field(default_factory=list)
    source: str = Field("api", max_length=64)


class ConsentChange(_Input):
    granted: bool
    source: str = Field("api", max_length=64)


class ChannelOptOuts(_Input):
    channels: list[Literal["email", "sms", "phone", "app", "wechat"]] = Field(max_length=10)


class Lookup(_Input):
    """Exact lookup by one personal value; sent in the body so it never lands in URLs or access logs."""

    phone: str | None = Field(None, max_length=32)
    email: str | None = Field(None, max_length=254)


class ContactDetailsRequest(_Input):
    purpose: Purpose
    channels: list[str] = Field(default_factory=list, max_length=10)


class NewInteraction(_Input):
    interaction_id: str | None = Field(None, max_length=128)
    customer_id: str = Field(min_length=1, max_length=128)
    channel: Literal["phone", "email", "chat", "social", "sms", "app", "visit", "web", "counter"]
    direction: Literal["inbound", "outbound"]
    occurred_at: datetime | None = None
    summary: str = Field(min_length=1, max_length=5_000)
    agent_id: str | None = Field(None, max_length=128)
    outcome: str | None = Field(None, max_length=200)
    kind: str | None = Field(None, max_length=64)
    urgent: bool | None = None

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("must carry a UTC offset (RFC 3339)")
        return v


class NewVisit(_Input):
    customer_id: str = Field(min_length=1, max_length=128)
    purpose: str = Field(min_length=1, max_length=500)
    planned_for: datetime
    owner: str | None = Field(None, max_length=128)

    @field_validator("planned_for")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("must carry a UTC offset (RFC 3339)")
        return v


class NewCommitment(_Input):
    description: str = Field(min_length=1, max_length=1_000)
    due_at: datetime

    @field_validator("due_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("must carry a UTC offset (RFC 3339)")
        return v


class VisitReport(_Input):
    summary: str = Field("", max_length=5_000)
    needs: list[str] = Field(default_factory=list, max_length=50)
    issues: list[str] = Field(default_factory=list, max_length=50)
    commitments: list[NewCommitment] = Field(default_factory=list, max_length=50)

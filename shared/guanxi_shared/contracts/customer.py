"""Payloads the customer service publishes. Never a clear personal value: ids, names of fields, levels."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from .inbound import Contract

Purpose = Literal["service", "survey", "care", "marketing"]
PURPOSES: tuple[str, ...] = ("service", "survey", "care", "marketing")


class CustomerRegistered(Contract):
    customer_id: str
    kind: Literal["person", "organisation"] = "person"
    member_level: str = "standard"
    consents: dict[str, bool] = Field(default_factory=dict)  # purpose → granted
    language: str = "zh"
    timezone: str = "Asia/Shanghai"
    registered_at: datetime
    source: str = "api"


class CustomerUpdated(Contract):
    customer_id: str
    fields: list[str]  # names only
    actor: str
    updated_at: datetime


class CustomerTierChanged(Contract):
    customer_id: str
    member_level: str
    previous_level: str | None = None
    tenure: str  # new | returning | loyal
    previous_tenure: str | None = None
    purchase_count: int
    total_amount: str  # decimal string
    changed_at: datetime


class CustomerConsentChanged(Contract):
    customer_id: str
    purpose: Purpose
    granted: bool
    consents: dict[str, bool]  # the whole picture after the change
    channels_opted_out: list[str] = Field(default_factory=list)
    changed_at: datetime
    source: str = "api"
    actor: str | None = None


class CustomerPiiAccessed(Contract):
    customer_id: str
    actor: str
    actor_role: str
    fields: list[str]
    purpose: str
    via: Literal["api", "internal", "export"] = "api"
    accessed_at: datetime
    request_id: str | None = None


class CustomerErased(Contract):
    customer_id: str
    erased_at: datetime
    actor: str
    reason: str | None = None
    # Was the profile a registered customer or only a stub learned from purchases.
    was_registered: bool = True


class CustomerCareDue(Contract):
    customer_id: str
    occasion_id: str  # stable: one occasion fires once
    occasion: Literal["birthday", "revisit", "profile_update", "commitment", "churn_risk"]
    due_at: datetime
    member_level: str | None = None
    owner: str | None = None
    details: dict[str, str] = Field(default_factory=dict)


class CustomerChurnRiskFlagged(Contract):
    customer_id: str
    last_activity_at: datetime
    churn_days: int
    member_level: str | None = None
    flagged_at: datetime


class CustomerResponseOverdue(Contract):
    customer_id: str
    interaction_id: str
    channel: str
    due_at: datetime
    handler: str | None = None  # the agent who logged the inbound contact, when known
    flagged_at: datetime


class CustomerCommitmentOverdue(Contract):
    customer_id: str
    visit_id: str
    commitment_id: str
    owner: str | None = None
    due_at: datetime
    flagged_at: datetime

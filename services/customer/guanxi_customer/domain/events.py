"""The events the customer service publishes, each checked against its contract when it is made."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from guanxi_shared.contracts import customer as contracts
from guanxi_shared.contracts.inbound import Contract
from guanxi_shared.events import CloudEvent, new_event
from guanxi_shared.topics import (
    CUSTOMER_CARE_DUE,
    CUSTOMER_CHURN_RISK_FLAGGED,
    CUSTOMER_COMMITMENT_OVERDUE,
    CUSTOMER_CONSENT_CHANGED,
    CUSTOMER_ERASED,
    CUSTOMER_PII_ACCESSED,
    CUSTOMER_REGISTERED,
    CUSTOMER_RESPONSE_OVERDUE,
    CUSTOMER_TIER_CHANGED,
    CUSTOMER_UPDATED,
)

SOURCE = "guanxi.customer"
NAMESPACE = uuid.UUID("6f1b7c2e-2a4f-4d59-9b1f-3c7c1e0b9a11")
# What consumers validate each event against (shared/guanxi_shared/contracts/customer.py).
CONTRACTS: dict[str, type[Contract]] = {
    CUSTOMER_REGISTERED: contracts.CustomerRegistered,
    CUSTOMER_UPDATED: contracts.CustomerUpdated,
    CUSTOMER_TIER_CHANGED: contracts.CustomerTierChanged,
    CUSTOMER_CONSENT_CHANGED: contracts.CustomerConsentChanged,
    CUSTOMER_PII_ACCESSED: contracts.CustomerPiiAccessed,
    CUSTOMER_ERASED: contracts.CustomerErased,
    CUSTOMER_CARE_DUE: contracts.CustomerCareDue,
    CUSTOMER_CHURN_RISK_FLAGGED: contracts.CustomerChurnRiskFlagged,
    CUSTOMER_RESPONSE_OVERDUE: contracts.CustomerResponseOverdue,
    CUSTOMER_COMMITMENT_OVERDUE: contracts.CustomerCommitmentOverdue,
}


def derived_id(*parts: str) -> str:
    """A stable id for a follow-up (event, job): a replay computes the same one."""
    return str(uuid.uuid5(NAMESPACE, ":".join(parts)))


def event(type_: str, customer_id: str, data: dict[str, Any], *, at: datetime, cause: CloudEvent | None = None,
          id: str | None = None) -> CloudEvent:
    """A customer event; with a cause it continues that event's correlation.

    The payload is validated against the event's contract: one that does not match is a bug here, and
    fails now rather than in every consumer (pydantic's ValidationError)."""
    payload = _jsonable(data)
    CONTRACTS[type_].model_validate(payload)
    if cause is not None:
        return cause.follow_up(type_, payload, source=SOURCE, subject=customer_id, id=id or derived_id(cause.id, type_),
                               time=at)
    return new_event(type_, customer_id, payload, source=SOURCE, id=id, time=at)


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return aware(value).isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value

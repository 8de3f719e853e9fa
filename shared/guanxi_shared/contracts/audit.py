"""Access records and violations (the gateway and the audit service)."""

from __future__ import annotations

from datetime import datetime

from .inbound import Contract


class AccessRecorded(Contract):
    actor: str
    role: str
    method: str
    path: str  # route template where known, never query strings with personal values
    status: int
    request_id: str
    client_ip: str | None = None
    customer_id: str | None = None
    duration_ms: float | None = None
    at: datetime


class AuditViolation(Contract):
    violation_id: str
    rule: str  # bulk_pii_read | role_violation | chain_broken
    actor: str | None = None
    detail: str
    at: datetime
    event_id: str | None = None  # the captured event that triggered the rule, when one did
    seq: int | None = None  # chain_broken: the first record that breaks the chain

"""The console's one way out, as the handlers see it: ``Gateway``, the gateway's public ``/api/v1``
called with the signed-in person's own token (or none, for the customer's public links), and what a
call can end in: an answer, a refusal (``GatewayError``, 4xx problem+json; ``Unauthenticated`` for 401)
or an outage (``GatewayUnavailable``: 5xx, time-out, connection refused).

The console never reads a service's database and never bypasses a role check: whatever the API
refuses, the console shows as refused."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

Params = Sequence[tuple[str, str]] | Mapping[str, str]


class GatewayError(Exception):
    """The gateway answered a refusal (4xx) as problem+json."""

    def __init__(self, status: int, title: str, detail: str, errors: list[Any] | None = None) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []


class Unauthenticated(GatewayError):
    """401: the person's token is missing, expired or no longer accepted: they must sign in again."""


class GatewayUnavailable(Exception):
    """The gateway (or the service behind it) cannot answer now: 5xx, time-out, connection refused."""


class Gateway(Protocol):
    async def ready(self) -> bool: ...

    async def api_parameters(self, path: str, method: str = "get") -> frozenset[str]:
        """The query parameters ``method path`` takes (from the gateway's OpenAPI document): how the
        console learns which filters an API has, e.g. the queue filters of ``GET /complaints``."""
        ...

    # -- complaints

    async def list_complaints(self, token: str, params: Params) -> dict[str, Any]: ...

    async def get_complaint(self, token: str, case_id: str) -> dict[str, Any]: ...

    async def complaint_command(self, token: str, case_id: str, path: str, body: Mapping[str, Any],
                                idempotency_key: str | None = None) -> dict[str, Any]: ...

    async def file_complaint(self, token: str, body: Mapping[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """``POST /complaints``: 202 with the case id; the case exists a moment later."""
        ...

    async def complaint_status(self, link_token: str) -> dict[str, Any]:
        """The customer's own view of a case behind an emailed link (public)."""
        ...

    # -- customers

    async def get_customer(self, token: str, customer_id: str, *, reveal: bool = False,
                           purpose: str | None = None) -> dict[str, Any]: ...

    async def list_customers(self, token: str, params: Params) -> dict[str, Any]: ...

    async def lookup_customers(self, token: str, *, phone: str | None = None, email: str | None = None) -> dict[str, Any]: ...

    async def create_customer(self, token: str, body: Mapping[str, Any],
                              idempotency_key: str | None = None) -> dict[str, Any]: ...

    async def update_customer(self, token: str, customer_id: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    async def erase_customer(self, token: str, customer_id: str, reason: str) -> None: ...

    async def export_customer(self, token: str, customer_id: str) -> dict[str, Any]: ...

    async def customer_timeline(self, token: str, customer_id: str, params: Params) -> dict[str, Any]: ...

    async def customer_consents(self, token: str, customer_id: str) -> dict[str, Any]: ...

    async def list_interactions(self, token: str, customer_id: str, limit: int = 20) -> dict[str, Any]: ...

    async def log_interaction(self, token: str, body: Mapping[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """``POST /interactions``: 202; the contact record exists a moment later."""
        ...

    async def list_visits(self, token: str, customer_id: str, limit: int = 20) -> dict[str, Any]: ...

    async def customer_care(self, token: str, customer_id: str, limit: int = 20) -> dict[str, Any]:
        """The customer's care plan: greetings, revisits, profile-update reminders, churn watch, commitments."""
        ...

    # -- notifications and surveys

    async def list_notifications(self, token: str, customer_id: str, limit: int = 20) -> dict[str, Any]: ...

    async def list_surveys(self, token: str, customer_id: str, limit: int = 20) -> dict[str, Any]: ...

    async def survey_form(self, link_token: str) -> dict[str, Any]: ...

    async def answer_survey(self, link_token: str, answers: Mapping[str, Any]) -> dict[str, Any]: ...

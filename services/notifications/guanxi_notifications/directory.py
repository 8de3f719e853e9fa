"""Contact details, asked of the customer service at the moment of sending (DESIGN.md "Personal data").

The clear address lives only in memory for the duration of one send; the customer service audits
the read. Its answers: 200 details, 403 no consent for the purpose, 404 unknown, 410 erased.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx
from guanxi_shared.auth import IDENTITY_HEADER, service_token
from pydantic import BaseModel, ConfigDict, Field
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential


class ContactDetails(BaseModel):
    model_config = ConfigDict(extra="ignore")

    customer_id: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    language: str | None = None
    timezone: str | None = None
    consents: dict[str, bool] = Field(default_factory=dict)
    channels_opted_out: list[str] = Field(default_factory=list)
    member_level: str | None = None

    def as_contact(self) -> dict[str, Any]:
        return self.model_dump()


class NoConsent(Exception):
    """403: the customer did not consent to this purpose."""


class UnknownCustomer(Exception):
    """404."""


class CustomerGone(Exception):
    """410: erased."""


class DirectoryUnavailable(Exception):
    """The customer service could not answer (timeout, 5xx): try again later."""


class ContactDirectory(Protocol):
    async def contact_details(self, customer_id: str, purpose: str, channels: list[str]) -> ContactDetails: ...


class _Retryable(Exception):
    pass


class HttpContactDirectory:
    """The customer service's internal endpoint, called with a service token."""

    def __init__(self, base_url: str, secret: str, *, timeout: float = 5.0, attempts: int = 3,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._secret = secret
        self._attempts = attempts
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=httpx.Timeout(timeout), transport=transport)

    async def close(self) -> None:
        await self._client.aclose()

    async def contact_details(self, customer_id: str, purpose: str, channels: list[str]) -> ContactDetails:
        try:
            async for attempt in AsyncRetrying(stop=stop_after_attempt(self._attempts),
                                               wait=wait_exponential(multiplier=0.2, max=2.0),
                                               retry=retry_if_exception_type(_Retryable), reraise=True):
                with attempt:
                    return await self._ask(customer_id, purpose, channels)
        except _Retryable as exc:
            raise DirectoryUnavailable(str(exc)) from exc
        raise DirectoryUnavailable("no attempt made")  # unreachable: AsyncRetrying runs at least once

    async def _ask(self, customer_id: str, purpose: str, channels: list[str]) -> ContactDetails:
        try:
            response = await self._client.post(
                f"/internal/customers/{customer_id}/contact-details",
                json={"purpose": purpose, "channels": channels},
                headers={IDENTITY_HEADER: service_token("notifications", self._secret)},
            )
        except httpx.HTTPError as exc:
            raise _Retryable(f"customer service unreachable: {type(exc).__name__}") from exc
        if response.status_code == 200:
            return ContactDetails.model_validate(response.json())
        if response.status_code == 403:
            raise NoConsent(purpose)
        if response.status_code == 404:
            raise UnknownCustomer(customer_id)
        if response.status_code == 410:
            raise CustomerGone(customer_id)
        if response.status_code >= 500 or response.status_code == 429:
            raise _Retryable(f"customer service answered {response.status_code}")
        # Any other 4xx is a contract problem on our side: retrying later will not fix it.
        raise UnknownCustomer(f"customer service refused the request: {response.status_code}")

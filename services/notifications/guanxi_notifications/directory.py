"""Contact details, asked of the customer service at the moment of sending (README "Personal data").

The clear address lives only in memory for the duration of one send; the customer service audits
the read. Its answers: 200 details, 403 no consent for the purpose, 404 unknown, 410 erased; the
adapters turn them into ``ContactDetails`` or the outcomes of ``domain.delivery``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import httpx
from guanxi_shared.auth import IDENTITY_HEADER, service_token
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from .domain.delivery import ContactDetails, CustomerGone, DirectoryUnavailable, NoConsent, UnknownCustomer


class ContactDirectory(Protocol):
    """Where the handlers get a customer's contact details for one purpose (e.g. ``service``)."""

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


@dataclass
class InMemoryContactDirectory:
    """The customer service's contract held in memory, for the fast tests: details for a purpose the
    customer consented to, ``NoConsent`` otherwise, ``CustomerGone`` once erased, ``UnknownCustomer``
    for an id it does not hold, ``DirectoryUnavailable`` while the customer is in ``unavailable``."""

    customers: dict[str, ContactDetails] = field(default_factory=dict)
    erased: set[str] = field(default_factory=set)
    unavailable: set[str] = field(default_factory=set)
    calls: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (customer, purpose, channels)

    def add(self, details: ContactDetails) -> None:
        self.customers[details.customer_id] = details

    def calls_for(self, customer_id: str) -> int:
        return sum(1 for c in self.calls if c[0] == customer_id)

    async def contact_details(self, customer_id: str, purpose: str, channels: list[str]) -> ContactDetails:
        self.calls.append((customer_id, purpose, list(channels)))
        if customer_id in self.unavailable:
            raise DirectoryUnavailable("customer service answered 503")
        if customer_id in self.erased:
            raise CustomerGone(customer_id)
        details = self.customers.get(customer_id)
        if details is None:
            raise UnknownCustomer(customer_id)
        if not details.consents.get(purpose, False):
            raise NoConsent(purpose)
        return details.model_copy(deep=True)

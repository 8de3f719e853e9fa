"""What one send exchanges with the outside: the customer service's contact details, the message a
channel carries, and the outcomes the directory and the channels report.

The adapters (``directory``, ``channels``) raise these; the handlers react to them without knowing
which protocol (HTTP, SMTP, a webhook) stood behind the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from guanxi_shared.errors import Forbidden, Gone, NotFound
from pydantic import BaseModel, ConfigDict, Field

from . import Channel


class ContactDetails(BaseModel):
    """The customer service's answer for one purpose. Clear addresses live in memory for one send only."""

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


def address_for(channel: Channel, contact: ContactDetails) -> str | None:
    if channel is Channel.email:
        return contact.email or None
    if channel is Channel.sms:
        return contact.phone or None
    # Push and the in-app inbox are addressed by customer id: the app knows the devices.
    return contact.customer_id or None


@dataclass(frozen=True)
class OutboundMessage:
    notification_id: str
    customer_id: str
    channel: Channel
    address: str  # clear: held in memory for this send only, never stored or logged
    language: str
    subject: str
    body: str
    category: str


# ---- what the contact directory answers besides details (the customer service's 403, 404, 410) ----


class NoConsent(Forbidden):
    """The customer did not consent to this purpose."""


class UnknownCustomer(NotFound):
    pass


class CustomerGone(Gone):
    """The customer was erased."""


class DirectoryUnavailable(Exception):
    """The directory could not answer (timeout, 5xx): try again later."""


# ---- what a channel answers besides "handed over" ----


class TransientDeliveryError(Exception):
    """Try again later (a mail server or provider is busy or unreachable)."""


class PermanentDeliveryError(Exception):
    """This address or message will never work."""

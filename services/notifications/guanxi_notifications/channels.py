"""Delivery channels behind one small interface: email (SMTP), SMS and push (HTTP webhook providers),
the in-app inbox (our own store), and ``RecordingProvider``, the fake the fast tests send through.

A provider either returns (delivered to the channel) or raises ``TransientDeliveryError`` (try
again later) or ``PermanentDeliveryError`` (this address or message will never work).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol

import aiosmtplib
import httpx
from guanxi_shared.clock import Clock
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from .domain.delivery import OutboundMessage, PermanentDeliveryError, TransientDeliveryError
from .store import NotificationStore

SIGNATURE_HEADER = "X-Guanxi-Signature"
TIMESTAMP_HEADER = "X-Guanxi-Timestamp"


class ChannelProvider(Protocol):
    """Hands one message to its channel (returning means the channel has it)."""

    async def send(self, message: OutboundMessage) -> None: ...


class EmailProvider:
    def __init__(self, host: str, port: int, sender: str, *, username: str | None = None, password: str | None = None,
                 starttls: bool = False, timeout: float = 10.0) -> None:
        self._host, self._port, self._sender = host, port, sender
        self._username, self._password = username, password
        self._starttls, self._timeout = starttls, timeout

    def build(self, message: OutboundMessage) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self._sender
        mail["To"] = message.address
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False)
        # Stable per notification: a resend after a crash carries the same id, so mail systems can
        # recognise the duplicate (the at-least-once edge documented in the README).
        mail["Message-ID"] = f"<{message.notification_id}@notifications.guanxi>"
        mail["X-Guanxi-Category"] = message.category
        mail.set_content(message.body)
        mail["Content-Language"] = message.language  # after set_content, which resets Content-* headers
        return mail

    async def send(self, message: OutboundMessage) -> None:
        try:
            await aiosmtplib.send(self.build(message), hostname=self._host, port=self._port, username=self._username,
                                  password=self._password, start_tls=self._starttls, timeout=self._timeout)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            if all(code >= 500 for code in codes):
                raise PermanentDeliveryError(f"recipient refused ({', '.join(map(str, codes))})") from exc
            raise TransientDeliveryError(f"recipient deferred ({', '.join(map(str, codes))})") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500:
                raise PermanentDeliveryError(f"SMTP {exc.code}: {exc.message}") from exc
            raise TransientDeliveryError(f"SMTP {exc.code}: {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TransientDeliveryError(f"SMTP unavailable: {type(exc).__name__}") from exc


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over ``<timestamp>.<body>``; the timestamp lets the receiver refuse replays."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class _ProviderBusy(Exception):
    pass


class WebhookProvider:
    """SMS or push through an HTTP provider; the request body is signed with a shared secret."""

    def __init__(self, url: str, secret: str, *, timeout: float = 5.0, attempts: int = 3, backoff: float = 0.2,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._url = url
        self._secret = secret
        self._attempts = attempts
        self._backoff = backoff
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout), transport=transport)

    async def close(self) -> None:
        await self._client.aclose()

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        return {"notification_id": message.notification_id, "channel": message.channel.value, "to": message.address,
                "language": message.language, "subject": message.subject, "body": message.body,
                "category": message.category}

    async def send(self, message: OutboundMessage) -> None:
        body = json.dumps(self.payload(message), ensure_ascii=False, separators=(",", ":")).encode()
        try:
            async for attempt in AsyncRetrying(stop=stop_after_attempt(self._attempts),
                                               wait=wait_exponential(multiplier=self._backoff, max=5.0),
                                               retry=retry_if_exception_type(_ProviderBusy), reraise=True):
                with attempt:
                    await self._post(message, body)
        except _ProviderBusy as exc:
            raise TransientDeliveryError(str(exc)) from exc

    async def _post(self, message: OutboundMessage, body: bytes) -> None:
        timestamp = str(int(time.time()))  # signed freshly per attempt: receivers check its age
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: sign(self._secret, timestamp, body),
                   "Idempotency-Key": message.notification_id}
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise _ProviderBusy(f"provider unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise _ProviderBusy(f"provider answered {response.status_code}")
        if response.status_code >= 400:
            raise PermanentDeliveryError(f"provider refused: {response.status_code}")


class InboxProvider:
    """The in-app channel: the message lands in the customer's inbox in our own store."""

    def __init__(self, store: NotificationStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def send(self, message: OutboundMessage) -> None:
        await self._store.put_inbox(message, self._clock.now())


@dataclass
class RecordingProvider:
    """A channel for the fast tests: keeps what it was given; ``failures`` are raised by the next sends,
    one each, in order."""

    sent: list[OutboundMessage] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)
    attempts: int = 0

    async def send(self, message: OutboundMessage) -> None:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)

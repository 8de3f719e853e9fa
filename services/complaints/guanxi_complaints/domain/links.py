"""The customer's status link: a signed, expiring token naming one case (pure, no I/O).

The token is ``<payload>.<signature>``, both base64url without padding: the payload is the JSON
``{"c": <case id>, "x": <expiry, unix seconds>}``, the signature an HMAC-SHA256 of the payload under
the service's status-link secret. It carries nothing personal (a case id and a time), and the page
behind it answers only non-personal facts of the case.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from guanxi_shared.errors import Gone, NotFound

_PURPOSE = b"guanxi-complaint-status\x00"


class StatusLinkInvalid(NotFound):
    """A malformed token, a wrong signature, or a case that does not exist: the caller learns no more."""

    title = "Status link not valid"

    def __init__(self, detail: str = "this status link is not valid") -> None:
        super().__init__(detail)


class StatusLinkExpired(Gone):
    """Well signed, but past its expiry."""

    title = "Status link expired"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class StatusLinks:
    """Issues and reads status links: ``<base_url>/<token>``, valid for ``valid_for`` after issue."""

    secret: str
    base_url: str
    valid_for: timedelta

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self.secret.encode(), _PURPOSE + payload.encode(), hashlib.sha256).digest())

    def token(self, case_id: str, now: datetime) -> str:
        expires = int((now + self.valid_for).timestamp())
        payload = _b64(json.dumps({"c": case_id, "x": expires}, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def url(self, case_id: str, now: datetime) -> str:
        return f"{self.base_url.rstrip('/')}/{self.token(case_id, now)}"

    def read(self, token: str, now: datetime) -> str:
        """The case id the token names; ``StatusLinkInvalid`` (404) or ``StatusLinkExpired`` (410)."""
        if not token.isascii():  # base64url only: anything else was never issued here
            raise StatusLinkInvalid()
        payload, _, signature = token.partition(".")
        if not payload or not signature or not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            raise StatusLinkInvalid()
        try:
            claims = json.loads(_unb64(payload))
            case_id, expires = str(claims["c"]), int(claims["x"])
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise StatusLinkInvalid() from exc
        expires_at = datetime.fromtimestamp(expires, tz=UTC)
        if now >= expires_at:
            raise StatusLinkExpired(f"the status link expired at {expires_at.isoformat()}")
        return case_id

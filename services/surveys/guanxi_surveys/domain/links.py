"""Answer-link tokens: an HMAC-signed JWT naming the survey, with an expiry and a nonce.

The token is the customer's only credential, so it carries nothing personal (survey id, nonce,
expiry). Single use is enforced by the store (a survey is answered once), and the nonce must match
the one recorded when the link was issued, so a token for a cancelled or re-issued survey fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import jwt
from guanxi_shared.errors import Gone, NotFound

AUDIENCE = "guanxi-survey-answer"
ALGORITHM = "HS256"


class LinkInvalid(NotFound):
    """Bad signature, wrong audience, malformed, or not the link the survey was sent with. The caller
    learns no more than that (the cause is chained for the logs)."""

    title = "Survey link not valid"

    def __init__(self, detail: str = "this survey link is not valid") -> None:
        super().__init__(detail)


class LinkExpired(Gone):
    """Well signed, but past its expiry."""

    title = "Survey link expired"


@dataclass(frozen=True)
class LinkClaims:
    survey_id: str
    nonce: str
    expires_at: datetime


def sign_link(survey_id: str, nonce: str, expires_at: datetime, secret: str) -> str:
    claims = {"sid": survey_id, "jti": nonce, "aud": AUDIENCE, "exp": int(expires_at.timestamp())}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_link(token: str, secret: str, now: datetime) -> LinkClaims:
    """Verify the signature; expiry is checked against the injected clock, not the wall clock."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], audience=AUDIENCE,
                            options={"verify_exp": False, "require": ["sid", "jti", "exp", "aud"]})
        expires_at = datetime.fromtimestamp(int(claims["exp"]), tz=now.tzinfo)
        survey, nonce = str(claims["sid"]), str(claims["jti"])
    except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
        raise LinkInvalid() from exc
    if now >= expires_at:
        raise LinkExpired(f"the link expired at {expires_at.isoformat()}")
    return LinkClaims(survey, nonce, expires_at)


def link_url(base_url: str, token: str) -> str:
    """The link the customer opens: the token appended to the link base (the console's ``/s`` page)."""
    return f"{base_url.rstrip('/')}/{token}"

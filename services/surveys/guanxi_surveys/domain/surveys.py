"""Who may be surveyed and when, what a trigger decides, and when a survey can still be answered."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from guanxi_shared.errors import Conflict, Gone, NotFound
from guanxi_shared.events import CloudEvent

from .links import LinkInvalid
from .timing import SendPolicy, send_window, zone

Kind = Literal["post_purchase", "post_resolution"]
KINDS: tuple[str, ...] = ("post_purchase", "post_resolution")
# A survey is pending while it can still go out or be answered: erasure and withdrawn consent cancel it.
PENDING_STATES: tuple[str, ...] = ("scheduled", "sent")

# Deterministic ids: a redelivered trigger maps to the same survey, skip record and events.
NAMESPACE = uuid.UUID("5d0c7f4e-8f8a-4a77-9d2b-6c1f3f1e5a01")


def survey_id(kind: str, trigger_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{trigger_id}"))


def derived_event_id(cause: str, what: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{cause}:{what}"))


class SurveyNotFound(NotFound):
    pass


class SurveyAnswered(Conflict):
    title = "Survey already answered"

    def __init__(self, detail: str = "this survey has already been answered; thank you") -> None:
        super().__init__(detail)


class SurveyClosed(Gone):
    title = "Survey closed"

    def __init__(self, detail: str = "this survey is no longer open") -> None:
        super().__init__(detail)


@dataclass(frozen=True)
class Trigger:
    """Something that calls for a survey: a completed purchase or a resolved complaint."""

    kind: str
    trigger_id: str  # order_id or complaint_id: the business key
    customer_id: str
    at: datetime
    channel: str | None
    cause: CloudEvent

    @property
    def survey_id(self) -> str:
        return survey_id(self.kind, self.trigger_id)


@dataclass(frozen=True)
class TierChange:
    """A customer's member level as of ``at`` (``customer.tier_changed``)."""

    customer_id: str
    member_level: str
    at: datetime


# ---------------------------------------------------------------- who may be surveyed

@dataclass
class CustomerView:
    """What this service knows of a customer, learnt from customer events (never personal data)."""

    customer_id: str
    survey_consent: bool | None = None  # None: never told
    erased: bool = False
    language: str | None = None
    timezone: str | None = None
    member_level: str | None = None
    last_survey_at: datetime | None = None


def refusal_at_trigger(view: CustomerView | None, scheduled_for: datetime, cooldown: timedelta) -> str | None:
    """Why no survey may be scheduled, or None. Unknown consent is checked again at send time."""
    if view is None:
        return None
    if view.erased:
        return "customer_erased"
    if view.survey_consent is False:
        return "no_survey_consent"
    if view.last_survey_at is not None and abs(scheduled_for - view.last_survey_at) < cooldown:
        return "cooldown"
    return None


def refusal_at_send(view: CustomerView | None) -> str | None:
    """Our default: no survey unless survey consent is known to be granted when it goes out."""
    if view is not None and view.erased:
        return "customer_erased"
    if view is None or view.survey_consent is None:
        return "survey_consent_unknown"
    if not view.survey_consent:
        return "no_survey_consent"
    return None


@dataclass(frozen=True)
class Scheduled:
    """The moment a trigger's survey goes out, and the window it was chosen in."""

    at: datetime
    window: tuple[datetime, datetime]


def schedule(trigger: Trigger, view: CustomerView | None, now: datetime, window_days: tuple[float, float],
             policy: SendPolicy, cooldown: timedelta, default_timezone: str) -> Scheduled | str:
    """When to send the survey ``trigger`` calls for, or the reason no survey may be scheduled.

    A window already over is skipped (``window_passed``); otherwise the first allowed moment of the
    window in the customer's zone, unless the customer refused, was erased or was surveyed within
    ``cooldown`` of it."""
    window = send_window(trigger.at, now, *window_days)
    if window is None:
        return "window_passed"
    tz = zone(view.timezone if view else None, default_timezone)
    at = policy.choose(window[0], window[1], tz).astimezone(UTC)
    reason = refusal_at_trigger(view, at, cooldown)
    return reason if reason is not None else Scheduled(at, window)


# ---------------------------------------------------------------- answering

def check_answerable(survey: Mapping[str, Any] | None, nonce: str, now: datetime) -> Mapping[str, Any]:
    """The survey behind a link, if it can be answered now with that link's nonce; else why not."""
    if survey is None or survey.get("link_nonce") != nonce:
        raise LinkInvalid()
    status = survey["status"]
    if status == "completed":
        raise SurveyAnswered()
    if status in ("cancelled", "expired") or survey["expires_at"] <= now:
        raise SurveyClosed()
    return survey

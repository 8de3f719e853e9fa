"""Pure rules of the notifications service: what to send for which event, when a message may go out
(consent, opt-out, frequency caps, quiet hours), which channel carries it, how addresses are masked,
and the refusals the service answers with.

No I/O here: the handlers gather the facts and ask these functions. Beside this module:
``delivery`` (what a send exchanges with the directory and the channels), ``templating`` (sandboxed
Jinja) and ``defaults`` (the seeded templates).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from guanxi_shared import topics as t
from guanxi_shared.errors import Conflict, Invalid, NotFound

NOTIFICATION_NAMESPACE = uuid.UUID("6f1c1a52-3f0e-4d53-9f53-1d8f8a0c5e11")
LANGUAGES: tuple[str, ...] = ("zh", "en")
DEFAULT_LANGUAGE = "zh"


class Category(StrEnum):
    """Why we write to the customer; each is a consent purpose of the customer service."""

    service = "service"  # complaint updates, receipts: never capped, never held by quiet hours
    survey = "survey"
    care = "care"
    marketing = "marketing"


class Channel(StrEnum):
    email = "email"
    sms = "sms"
    push = "push"
    inapp = "inapp"


DEFAULT_CHANNEL_ORDER: tuple[Channel, ...] = (Channel.email, Channel.sms, Channel.push, Channel.inapp)


class Status(StrEnum):
    pending = "pending"  # accepted, waiting for (another) attempt
    held = "held"  # quiet hours or frequency cap: released at ``due_at``
    sending = "sending"  # claimed by a dispatcher: durable before the channel is touched
    sent = "sent"
    failed = "failed"
    suppressed = "suppressed"


OPEN_STATUSES: tuple[Status, ...] = (Status.pending, Status.held)


# ---------------------------------------------------------------------------------------------
# Refusals (answered as problem+json at the edge).


class NotificationNotFound(NotFound):
    pass


class InboxMessageNotFound(NotFound):
    pass


class TemplateNotFound(NotFound):
    pass


class TemplateExists(Conflict):
    """POST of a template whose key and language exist: a new version is a PUT."""


class TemplateChanged(Conflict):
    """Another admin stored the same version number first: retry."""


class InvalidCursor(Invalid):
    pass


@dataclass(frozen=True)
class NotificationSpec:
    """What an inbound event asks for, before any protection rule is applied."""

    customer_id: str
    template: str
    category: Category
    variables: dict[str, Any]
    trigger_event_id: str
    trigger_type: str
    channel: Channel | None = None
    language: str | None = None

    @property
    def notification_id(self) -> str:
        # One trigger event and template make one notification: a redelivered event finds it again.
        return str(uuid.uuid5(NOTIFICATION_NAMESPACE, f"{self.trigger_event_id}:{self.template}"))


# ---------------------------------------------------------------------------------------------
# Which template and category each customer-facing event maps to.

COMPLAINT_TEMPLATES: dict[str, str] = {
    t.COMPLAINT_ACKNOWLEDGED: "complaint_acknowledged",
    t.COMPLAINT_PRELIMINARY_OPINION_GIVEN: "complaint_preliminary_opinion",
    t.COMPLAINT_RESOLVED: "complaint_resolved",
    t.COMPLAINT_REOPENED: "complaint_reopened",
}

# Care occasions the customer hears about; "commitment" is a task for staff, not a message.
CARE_TEMPLATES: dict[str, tuple[str, Category]] = {
    "birthday": ("care_birthday", Category.care),
    "revisit": ("care_revisit", Category.care),
    "profile_update": ("care_profile_update", Category.care),
    "churn_risk": ("care_winback", Category.marketing),
}


def stringify(value: Any) -> Any:
    """Template variables are plain JSON values; datetimes become readable text."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M %Z").strip()
    return value


def complaint_variables(data: dict[str, Any]) -> dict[str, Any]:
    # Only fields meant for the customer: internal notes stay inside the complaints service.
    wanted = ("complaint_id", "category", "status", "resolution", "compensation", "status_link")
    out = {k: stringify(data.get(k)) for k in wanted if k in data}
    out.setdefault("compensation", None)
    out.setdefault("resolution", None)
    out.setdefault("category", None)
    out.setdefault("status_link", None)
    out["case_number"] = data.get("number")  # TS-2026-000123; absent on cases older than case numbers
    return out


# ---------------------------------------------------------------------------------------------
# Quiet hours and frequency caps.


def parse_clock_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def zone(name: str | None, default: str) -> ZoneInfo:
    for candidate in (name, default):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def quiet_hours_end(now: datetime, tz: ZoneInfo, start: time, end: time) -> datetime | None:
    """When the quiet period containing ``now`` ends (aware, UTC-comparable), or None if not quiet.

    The window may wrap midnight (21:00-09:00) or not (12:00-14:00); ``start == end`` means none.
    """
    if start == end:
        return None
    local = now.astimezone(tz)
    clock = local.time().replace(tzinfo=None)
    wraps = start > end
    quiet = (clock >= start or clock < end) if wraps else (start <= clock < end)
    if not quiet:
        return None
    end_day = local.date()
    if wraps and clock >= start:
        end_day = end_day + timedelta(days=1)
    # Build the wall-clock end in the customer's zone (DST-aware through zoneinfo).
    return datetime.combine(end_day, end, tzinfo=tz)


def frequency_cap_release(sent_at: Iterable[datetime], limit: int | None, window: timedelta,
                          now: datetime) -> datetime | None:
    """None when one more message fits the cap; otherwise when the oldest counted one leaves the window."""
    if limit is None:
        return None
    recent = sorted(s for s in sent_at if now - window < s <= now)
    if len(recent) < limit:
        return None
    if limit <= 0:
        return now + window
    # Sending now would exceed the cap until enough old messages age out of the window.
    return recent[len(recent) - limit] + window


# ---------------------------------------------------------------------------------------------
# Channels and consent.


def consent_refusal(category: Category, consents: dict[str, bool] | None) -> str | None:
    """Reason to suppress, from what we learned of the customer's consents (None = go on).

    Service messages are part of the relationship itself: only an explicit withdrawal stops them.
    Other purposes need a known grant; when we know nothing the customer service decides (403).
    """
    if consents is None:
        return None
    granted = consents.get(category.value)
    if granted is False:
        return f"no_consent:{category.value}"
    return None


def channel_candidates(requested: Channel | None, preferred: Sequence[str] | None, opted_out: Iterable[str],
                       available: Iterable[Channel]) -> tuple[list[Channel], list[Channel]]:
    """Channels to try, in order, and those skipped because the customer opted out.

    An explicitly requested channel is the only candidate (a producer asking for SMS does not get an
    email behind the customer's back); otherwise the customer's preferred order, then the default.
    """
    blocked = {c for c in opted_out}
    usable = set(available)
    if requested is not None:
        order: list[Channel] = [requested]
    else:
        order = []
        for name in [*(preferred or ()), *DEFAULT_CHANNEL_ORDER]:
            try:
                channel = Channel(name)
            except ValueError:
                continue
            if channel not in order:
                order.append(channel)
    skipped = [c for c in order if c.value in blocked]
    return [c for c in order if c.value not in blocked and c in usable], skipped


def mask_address(channel: Channel, address: str) -> str:
    """What the delivery log may keep: enough to recognise, never enough to use."""
    if channel is Channel.email and "@" in address:
        local, _, domain = address.partition("@")
        head = local[:1]
        return f"{head}***@{domain}"
    if channel is Channel.sms:
        digits = address.strip()
        if len(digits) <= 4:
            return "*" * len(digits)
        keep_head = 3 if digits.startswith("+") else 0
        return digits[:keep_head] + "*" * (len(digits) - keep_head - 4) + digits[-4:]
    return address


def choose_language(*candidates: str | None) -> str:
    for lang in candidates:
        if lang:
            short = lang.lower().split("-")[0].split("_")[0]
            if short in LANGUAGES:
                return short
    return DEFAULT_LANGUAGE


def retry_delay(attempt: int, schedule: Sequence[float]) -> timedelta:
    """Backoff before attempt ``attempt + 1`` (attempt counts from 1)."""
    if not schedule:
        return timedelta(seconds=60)
    index = min(max(attempt - 1, 0), len(schedule) - 1)
    return timedelta(seconds=schedule[index])


def event_id(notification_id: str, kind: str, n: int = 0) -> str:
    """Deterministic id of an outcome event, so a replayed decision republishes the same id."""
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, f"{notification_id}:{kind}:{n}"))


def pseudonym(customer_id: str) -> str:
    """What an erased customer's log entries keep instead of the id (still countable in KPIs)."""
    return "erased-" + str(uuid.uuid5(NOTIFICATION_NAMESPACE, "erased:" + customer_id))[:18]


@dataclass
class Decision:
    """Result of one dispatch attempt: the new status and what to record with it."""

    status: Status
    reason: str | None = None
    due_at: datetime | None = None
    channel: Channel | None = None
    address_masked: str | None = None
    language: str | None = None
    template_version: int | None = None
    count_attempt: bool = False


def reason_code(reason: str | None) -> str | None:
    """The stable part of a reason ("no_consent", "quiet_hours", "permanent"...), for KPIs."""
    if not reason:
        return None
    return reason.split(":")[0].split(" ")[0]

"""Response clocks (CC-3) and care occasions (CR-2, CR-4): when each falls due, the key that makes it
fire once, and the events it emits."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from guanxi_shared.events import CloudEvent
from guanxi_shared.topics import (
    CUSTOMER_CARE_DUE,
    CUSTOMER_CHURN_RISK_FLAGGED,
    CUSTOMER_COMMITMENT_OVERDUE,
    CUSTOMER_RESPONSE_OVERDUE,
)

from ..settings import CustomerSettings, ResponseTargets
from .events import aware, derived_id, event
from .profile import Doc, consent_flags

# Response clocks ---------------------------------------------------------------------------------------


def response_minutes(channel: str, kind: str | None, urgent: bool | None, targets: ResponseTargets) -> int:
    """Deadline for answering an inbound contact: urgent 1 h, consultation 30 min, email 4 h, else 24 h."""
    if urgent:
        return targets.urgent
    if (kind or "").lower() == "consultation":
        return targets.consultation
    if channel.lower() == "email":
        return targets.email
    return targets.default


def add_minutes(moment: datetime, minutes: int) -> datetime:
    return moment + timedelta(minutes=minutes)


# Care dates -----------------------------------------------------------------------------------------------

def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "Asia/Shanghai")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Shanghai")


def next_birthday(birthday: str, now: datetime, tz_name: str | None, hour: int) -> datetime:
    """The greeting moment of the birthday falling today or later, in the customer's time zone."""
    born = date.fromisoformat(birthday)
    tz = zone(tz_name)
    today = now.astimezone(tz).date()
    for year in (today.year, today.year + 1):
        day = born.replace(year=year) if not (born.month == 2 and born.day == 29) else _feb29(year)
        if day >= today:
            return datetime.combine(day, time(hour), tz).astimezone(UTC)
    raise AssertionError("unreachable: next year always qualifies")


def _feb29(year: int) -> date:
    try:
        return date(year, 2, 29)
    except ValueError:
        return date(year, 2, 28)


def last_activity(doc: Doc) -> datetime:
    """Latest purchase or contact, or registration: the churn clock restarts from it (CR-4)."""
    moments = [m for m in (doc.get("last_purchase_at"), doc.get("last_contact_at"), doc.get("created_at")) if m]
    return max(aware(m) for m in moments)


def birthday_key(customer_id: str, at: datetime, tz_name: str | None) -> str:
    return f"birthday:{customer_id}:{at.astimezone(zone(tz_name)).year}"


def revisit_key(doc: Doc, settings: CustomerSettings) -> tuple[str, datetime] | None:
    """The periodic revisit of a key customer, counted from the last contact or level change."""
    if doc.get("member_level") not in settings.revisit_levels:
        return None
    moments = (doc.get("last_contact_at"), doc.get("level_since"), doc.get("registered_at"), doc.get("created_at"))
    since = max(m for m in moments if m)
    due = since + timedelta(days=settings.revisit_days)
    return f"revisit:{doc['_id']}:{due.date().isoformat()}", due


def profile_update_key(doc: Doc, settings: CustomerSettings) -> tuple[str, datetime]:
    since: datetime = doc.get("profile_updated_at") or doc["created_at"]
    due = since + timedelta(days=settings.profile_stale_days)
    return f"profile_update:{doc['_id']}:{due.date().isoformat()}", due


def churn_key(doc: Doc, settings: CustomerSettings) -> tuple[str, datetime, datetime]:
    """Key, due time and the last activity it counts from."""
    since = last_activity(doc)
    return f"churn:{doc['_id']}:{since.isoformat()}", since + timedelta(days=settings.churn_days), since


def occasion_current(doc: Doc, occasion: str, job_id: str, settings: CustomerSettings) -> bool:
    """Whether the occasion of a due job still stands for the customer as it is now (no contact or
    profile change since it was planned, care consent still given)."""
    if occasion == "revisit":
        current = revisit_key(doc, settings)
        return current is not None and current[0] == job_id
    if occasion == "profile_update":
        return profile_update_key(doc, settings)[0] == job_id
    if occasion == "birthday":
        return consent_flags(doc.get("consents") or {})["care"]
    return True


# Events of due jobs -----------------------------------------------------------------------------------------

def care_due(customer_id: str, job: Doc, occasion: str, now: datetime, level: str | None, owner: str | None = None,
             details: dict[str, str] | None = None) -> CloudEvent:
    return event(CUSTOMER_CARE_DUE, customer_id, {
        "customer_id": customer_id, "occasion_id": str(job["_id"]), "occasion": occasion, "due_at": job["due_at"],
        "member_level": level, "owner": owner, "details": details or {}},
        at=now, id=derived_id(str(job["_id"]), "care_due"))


def churn_flagged(doc: Doc, job: Doc, since: datetime, now: datetime, settings: CustomerSettings) -> list[CloudEvent]:
    cid = doc["_id"]
    return [
        event(CUSTOMER_CHURN_RISK_FLAGGED, cid, {
            "customer_id": cid, "last_activity_at": since, "churn_days": settings.churn_days,
            "member_level": doc.get("member_level"), "flagged_at": now}, at=now, id=derived_id(str(job["_id"]), "flag")),
        care_due(cid, job, "churn_risk", now, doc.get("member_level")),
    ]


def response_overdue(customer_id: str, inbound: Doc, job: Doc, now: datetime) -> CloudEvent:
    return event(CUSTOMER_RESPONSE_OVERDUE, customer_id, {
        "customer_id": customer_id, "interaction_id": inbound["_id"], "channel": inbound["channel"],
        "due_at": inbound["due_at"], "handler": inbound.get("agent_id"), "flagged_at": now},
        at=now, id=derived_id(str(job["_id"]), "overdue"))


def commitment_overdue(data: dict[str, Any], commitment: Doc, job: Doc, now: datetime) -> list[CloudEvent]:
    cid = data["customer_id"]
    return [
        event(CUSTOMER_COMMITMENT_OVERDUE, cid, {
            "customer_id": cid, "visit_id": data["visit_id"], "commitment_id": data["commitment_id"],
            "owner": data.get("owner"), "due_at": commitment["due_at"], "flagged_at": now},
            at=now, id=derived_id(str(job["_id"]), "overdue")),
        care_due(cid, job, "commitment", now, None, owner=data.get("owner"),
                 details={"visit_id": data["visit_id"], "commitment_id": data["commitment_id"]}),
    ]

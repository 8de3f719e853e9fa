"""Surveys and skips as staff see them; reports and KPIs over the surveys sent in a period."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from guanxi_shared.errors import Invalid

from .. import domain
from .deps import Deps

# What a report can be grouped by → the survey field holding it (``period``: the sent-at day, week or month).
GROUP_FIELDS = {"channel": "channel", "member_level": "member_level", "kind": "kind"}


def survey_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    def iso(name: str) -> str | None:
        value = doc.get(name)
        return value.isoformat() if isinstance(value, datetime) else None

    return {
        "id": doc["_id"], "customer_id": doc.get("customer_id"), "kind": doc["kind"], "trigger_id": doc["trigger_id"],
        "status": doc["status"], "scheduled_for": iso("scheduled_for"), "sent_at": iso("sent_at"),
        "expires_at": iso("expires_at"), "reminded": bool(doc.get("reminded")), "completed_at": iso("completed_at"),
        "csat": doc.get("csat"), "nps": doc.get("nps"), "channel": doc.get("channel"), "member_level": doc.get("member_level"),
        "template": f"{doc['kind']}@v{doc['template_version']}", "language": doc.get("language"),
        "cancel_reason": doc.get("cancel_reason"), "low_score": doc.get("low_score"),
    }


def skip_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], "customer_id": doc.get("customer_id"), "kind": doc["kind"], "trigger_id": doc["trigger_id"],
            "reason": doc["reason"], "at": doc["at"].isoformat()}


def _moment(value: str | None, default: datetime, deps: Deps, name: str) -> datetime:
    """RFC 3339 with offset, or a date (midnight in the business time zone)."""
    if value is None:
        return default
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(),
                                    tzinfo=domain.zone(None, deps.settings.default_timezone))
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise Invalid(f"{name}: must be a date (YYYY-MM-DD) or RFC 3339 time") from exc
    if moment.tzinfo is None:
        raise Invalid(f"{name}: a time needs a UTC offset")
    return moment


def report_range(deps: Deps, since: str | None, until: str | None) -> tuple[datetime, datetime]:
    """The ``[from, to)`` of a report or KPI query: dates or times, the last 30 days by default."""
    now = deps.clock.now()
    start = _moment(since, now - timedelta(days=30), deps, "from")
    end = _moment(until, now, deps, "to")
    if end <= start:
        raise Invalid("to must be after from")
    return start, end


def _page(items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next": items[-1]["id"] if more and items else None}


async def list_surveys(deps: Deps, customer_id: str | None, status: str | None, limit: int,
                       cursor: str | None) -> dict[str, Any]:
    match = {name: value for name, value in (("customer_id", customer_id), ("status", status)) if value}
    return _page([survey_view(d) for d in await deps.store.page_surveys(match, limit, cursor)], limit)


async def list_skips(deps: Deps, customer_id: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    match = {"customer_id": customer_id} if customer_id else {}
    return _page([skip_view(d) for d in await deps.store.page_skips(match, limit, cursor)], limit)


async def get_survey(deps: Deps, survey_id: str) -> dict[str, Any]:
    doc = await deps.store.get(survey_id)
    if doc is None:
        raise domain.SurveyNotFound(f"no survey {survey_id}")
    return survey_view(doc)


def templates(language: str) -> dict[str, Any]:
    items = [t.render(language) | {"kind": t.kind, "version": t.version} for t in domain.all_templates()]
    return {"items": items, "next": None}


async def report(deps: Deps, since: datetime, until: datetime, group_by: str | None, period: str = "month") -> dict[str, Any]:
    """Figures of the surveys sent in [since, until), overall and per group."""
    field = f"p_{period}" if group_by == "period" else (GROUP_FIELDS[group_by] if group_by else None)
    target = deps.settings.csat_target
    groups = await deps.store.report_figures(since, until, field)
    overall = domain.Figures.total(groups.values())
    return {"from": since.isoformat(), "to": until.isoformat(), "group_by": group_by,
            "period": period if group_by == "period" else None,
            "overall": overall.as_report(target) | {"distribution": overall.distribution()},
            "groups": [{"group": name, **figures.as_report(target), "distribution": figures.distribution()}
                       for name, figures in sorted(groups.items())]}


async def kpis(deps: Deps, since: datetime, until: datetime) -> dict[str, Any]:
    groups = await deps.store.report_figures(since, until, None)
    r = domain.Figures.total(groups.values()).as_report(deps.settings.csat_target)
    return {"from": since.isoformat(), "to": until.isoformat(), "avg_satisfaction": r["avg_csat"],
            "satisfaction_target": r["csat_target"], "meets_target": r["meets_target"], "nps": r["nps"],
            "response_rate": r["response_rate"], "sent": r["sent"], "completed": r["completed"]}

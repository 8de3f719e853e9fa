"""The surveys store in memory, for the fast tests: what ``MongoSurveyStore`` does, without a database
(the store contract suite runs against both)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from guanxi_shared.events import CloudEvent

from ..domain import PENDING_STATES, CustomerView, Figures
from .protocol import Change, Doc


class InMemorySurveyStore:
    """Documents in dicts by ``_id``. The events of every change it makes, and the decisions it is asked
    to announce, are appended to ``published`` in order."""

    def __init__(self) -> None:
        self.surveys: dict[str, Doc] = {}
        self.skips: dict[str, Doc] = {}
        self.customers: dict[str, Doc] = {}
        self.published: list[CloudEvent] = []

    # ------------------------------------------------------------ customer view

    async def views(self, customer_ids: Iterable[str]) -> dict[str, CustomerView]:
        return {c: CustomerView(customer_id=c, survey_consent=d.get("survey_consent"), erased=bool(d.get("erased")),
                                language=d.get("language"), timezone=d.get("timezone"), member_level=d.get("member_level"))
                for c in set(customer_ids) if (d := self.customers.get(c)) is not None}

    async def learn_profile(self, customer_id: str, language: str, timezone: str) -> None:
        self.customers.setdefault(customer_id, {"_id": customer_id}).update(language=language, timezone=timezone)

    async def learn_consent(self, customer_id: str, granted: bool, at: datetime) -> None:
        self._learn_if_newer(customer_id, "consent_at", at, {"survey_consent": granted})

    async def learn_level(self, customer_id: str, member_level: str, at: datetime) -> None:
        self._learn_if_newer(customer_id, "level_at", at, {"member_level": member_level})

    def _learn_if_newer(self, customer_id: str, stamp_field: str, at: datetime, fields: dict[str, Any]) -> None:
        view = self.customers.setdefault(customer_id, {"_id": customer_id, "created": True})
        if view.get(stamp_field) is None or view[stamp_field] <= at:
            view.update(fields, **{stamp_field: at})

    async def level_stamps(self, customer_ids: list[str]) -> dict[str, datetime | None]:
        return {c: self.customers[c].get("level_at") for c in customer_ids if c in self.customers}

    async def learn_levels(self, levels: Mapping[str, tuple[str, datetime]], known: set[str]) -> None:
        for c, (level, at) in levels.items():
            if c not in known:
                self.customers.setdefault(c, {"_id": c, "created": True, "member_level": level, "level_at": at})
            elif c in self.customers:
                self.customers[c].update(member_level=level, level_at=at)

    async def forget_customer(self, customer_id: str, at: datetime) -> None:
        view = self.customers.setdefault(customer_id, {"_id": customer_id})
        view.update(erased=True, erased_at=at, survey_consent=False)
        view.pop("language", None)
        view.pop("timezone", None)

    async def anonymise(self, customer_id: str, free_text: Iterable[str], at: datetime) -> int:
        questions = list(free_text)
        surveys = [d for d in self.surveys.values() if d.get("customer_id") == customer_id]
        for doc in surveys:
            doc["anonymised_at"] = at
            del doc["customer_id"]
            for q in questions:
                doc.get("answers", {}).pop(q, None)
        for doc in self.skips.values():
            if doc.get("customer_id") == customer_id:
                doc["anonymised_at"] = at
                del doc["customer_id"]
        return len(surveys)

    # ------------------------------------------------------------ triggers

    async def known_triggers(self, ids: Sequence[str]) -> tuple[dict[str, datetime], dict[str, tuple[str, datetime]]]:
        return ({i: self.surveys[i]["scheduled_for"] for i in ids if i in self.surveys},
                {i: (self.skips[i]["reason"], self.skips[i]["at"]) for i in ids if i in self.skips})

    async def last_survey_times(self, customer_ids: Iterable[str]) -> dict[str, datetime]:
        wanted = set(customer_ids)
        latest: dict[str, datetime] = {}
        for doc in self.surveys.values():
            c, at = doc.get("customer_id"), doc.get("scheduled_for")
            if c in wanted and at is not None:
                latest[c] = max(at, latest.get(c, at))
        return latest

    async def record_decisions(self, surveys: Sequence[Doc], skips: Sequence[Doc],
                               announcements: Mapping[str, CloudEvent]) -> None:
        pending = dict(announcements)
        for stored, docs in ((self.surveys, surveys), (self.skips, skips)):
            for doc in docs:
                if doc["_id"] in stored:
                    pending.pop(doc["_id"], None)
                else:
                    stored[doc["_id"]] = copy.deepcopy(doc)
        self.published.extend(pending.values())

    # ------------------------------------------------------------ lifecycle

    async def due_to_send(self, now: datetime, limit: int) -> list[Doc]:
        return self._due("scheduled_for", now, limit, status="scheduled")

    async def due_to_remind(self, now: datetime, limit: int) -> list[Doc]:
        return self._due("remind_at", now, limit, status="sent", reminded=False)

    def _due(self, field: str, now: datetime, limit: int, **match: Any) -> list[Doc]:
        due = [d for d in self.surveys.values() if d.get(field) is not None and d[field] <= now and _holds(d, match)]
        return copy.deepcopy(sorted(due, key=lambda d: d[field])[:limit])

    async def change(self, change: Change) -> bool:
        doc = self.surveys.get(change.survey_id)
        if doc is None or not _holds(doc, change.expect):
            return False
        doc.update(copy.deepcopy(dict(change.changes)))
        self.published.extend(change.events)
        return True

    async def change_each(self, changes: Sequence[Change]) -> int:
        return sum([await self.change(c) for c in changes])

    async def expire(self, now: datetime) -> int:
        expired = [d for d in self.surveys.values() if d.get("status") == "sent" and d["expires_at"] <= now]
        for doc in expired:
            doc.update(status="expired", expired_at=now)
        return len(expired)

    async def pending_of(self, customer_id: str) -> list[Doc]:
        return copy.deepcopy([d for d in self.surveys.values()
                              if d.get("customer_id") == customer_id and d.get("status") in PENDING_STATES])

    # ------------------------------------------------------------ reads

    async def get(self, survey_id: str) -> Doc | None:
        return copy.deepcopy(self.surveys.get(survey_id))

    async def page_surveys(self, match: Mapping[str, str], limit: int, cursor: str | None) -> list[Doc]:
        return _page(self.surveys, match, limit, cursor)

    async def page_skips(self, match: Mapping[str, str], limit: int, cursor: str | None) -> list[Doc]:
        return _page(self.skips, match, limit, cursor)

    async def report_figures(self, since: datetime, until: datetime, group_field: str | None) -> dict[str, Figures]:
        groups: dict[str, Figures] = {}
        for doc in self.surveys.values():
            sent_at = doc.get("sent_at")
            if sent_at is None or not since <= sent_at < until:
                continue
            key = str(doc.get(group_field) or "unknown") if group_field else "all"
            groups.setdefault(key, Figures()).count(1, completed=doc.get("status") == "completed", csat=doc.get("csat"),
                                                    nps=doc.get("nps"))
        return groups


def _holds(doc: Doc, match: Mapping[str, Any]) -> bool:
    return all(doc.get(field) == value for field, value in match.items())


def _page(docs: dict[str, Doc], match: Mapping[str, str], limit: int, cursor: str | None) -> list[Doc]:
    found = sorted((d for i, d in docs.items() if _holds(d, match) and (not cursor or i > cursor)), key=lambda d: d["_id"])
    return copy.deepcopy(found[:limit + 1])

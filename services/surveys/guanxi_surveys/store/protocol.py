"""What the surveys use cases need from storage (``SurveyStore``), and the shapes they exchange with it.

Surveys and skips are documents (``dict``): ``_id`` = uuid5(kind:trigger id), so a trigger delivered
twice is one survey or one skip. Customer views are ``CustomerView`` records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from guanxi_shared.events import CloudEvent

from ..domain import CustomerView, Figures

Doc = dict[str, Any]


@dataclass(frozen=True)
class Change:
    """A change of one survey (``changes``: field → new value), made only while the survey still holds
    ``expect`` (field → value), together with the events it causes."""

    survey_id: str
    expect: Mapping[str, Any]
    changes: Mapping[str, Any]
    events: Sequence[CloudEvent] = ()


class Announcer(Protocol):
    """Where decisions are announced from memory (the service's ``EventPublisher``)."""

    async def publish_many(self, events: Iterable[CloudEvent]) -> None: ...


class SurveyStore(Protocol):
    # ------------------------------------------------------------ customer view
    async def views(self, customer_ids: Iterable[str]) -> dict[str, CustomerView]: ...

    async def learn_profile(self, customer_id: str, language: str, timezone: str) -> None: ...

    async def learn_consent(self, customer_id: str, granted: bool, at: datetime) -> None:
        """Unless a newer consent is known already (events of two topics may cross)."""

    async def learn_level(self, customer_id: str, member_level: str, at: datetime) -> None:
        """Unless a newer level is known already."""

    async def level_stamps(self, customer_ids: list[str]) -> dict[str, datetime | None]:
        """When each known customer's member level was last learnt (None: never)."""

    async def learn_levels(self, levels: Mapping[str, tuple[str, datetime]], known: set[str]) -> None:
        """Member levels decided by the caller: views unknown so far (not in ``known``) are created."""

    async def forget_customer(self, customer_id: str, at: datetime) -> None:
        """The customer was erased: no consent, no language or zone kept."""

    async def anonymise(self, customer_id: str, free_text: Iterable[str], at: datetime) -> int:
        """Detach surveys and skips from the customer; drop the ``free_text`` answers, keep the scores."""

    # ------------------------------------------------------------ triggers
    async def known_triggers(self, ids: Sequence[str]) -> tuple[dict[str, datetime], dict[str, tuple[str, datetime]]]:
        """Of these ids, the surveys stored (→ scheduled time) and the skips stored (→ reason, time)."""

    async def last_survey_times(self, customer_ids: Iterable[str]) -> dict[str, datetime]:
        """When each customer's latest survey was scheduled (whatever became of it): the cooldown's anchor."""

    async def record_decisions(self, surveys: Sequence[Doc], skips: Sequence[Doc],
                               announcements: Mapping[str, CloudEvent]) -> None:
        """Store the new surveys and skips, then announce the decisions (survey or skip id → event).

        A document stored already (by another writer meanwhile) is left as it is, and its announcement
        is that writer's: it is dropped here. Returns once every announcement is out."""

    # ------------------------------------------------------------ lifecycle
    async def due_to_send(self, now: datetime, limit: int) -> list[Doc]:
        """Scheduled surveys whose time has come, earliest first."""

    async def due_to_remind(self, now: datetime, limit: int) -> list[Doc]:
        """Sent, not yet reminded surveys whose reminder time has come, earliest first."""

    async def change(self, change: Change) -> bool:
        """The change and its events in one write; False (nothing written) when the survey no longer holds
        ``change.expect``."""

    async def change_each(self, changes: Sequence[Change]) -> int:
        """``change`` for many surveys at once; how many were changed."""

    async def expire(self, now: datetime) -> int:
        """Sent surveys past their expiry become expired; how many."""

    async def pending_of(self, customer_id: str) -> list[Doc]: ...

    # ------------------------------------------------------------ reads
    async def get(self, survey_id: str) -> Doc | None: ...

    async def page_surveys(self, match: Mapping[str, str], limit: int, cursor: str | None) -> list[Doc]:
        """Surveys holding ``match`` (field → value) with ``_id`` after ``cursor``, by ``_id``: up to
        ``limit + 1`` (one more says there is a next page)."""

    async def page_skips(self, match: Mapping[str, str], limit: int, cursor: str | None) -> list[Doc]: ...

    async def report_figures(self, since: datetime, until: datetime, group_field: str | None) -> dict[str, Figures]:
        """The figures of the surveys sent in [since, until), per value of ``group_field`` ("unknown" when a
        survey has none), or all in one group ("all") when it is None."""

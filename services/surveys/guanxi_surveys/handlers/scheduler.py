"""The scheduler's pass: send the surveys whose time has come, remind once, expire. Every step is a
conditional change with its event in the same write, so restarts and several instances never send a
survey twice."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from functools import partial

from .. import domain
from ..domain import events
from ..store import Change
from .deps import Deps


def _link(deps: Deps, survey_id: str, nonce: str, expires_at: datetime) -> str:
    token = domain.sign_link(survey_id, nonce, expires_at, deps.settings.link_secret.get_secret_value())
    return domain.link_url(deps.settings.link_base_url, token)


async def send_due(deps: Deps) -> int:
    """Send every survey whose time has come, unless survey consent is not known to be granted by then
    (the survey is cancelled with the reason)."""
    store, settings, now = deps.store, deps.settings, deps.clock.now()
    due = await store.due_to_send(now, settings.scheduler_batch)
    if not due:
        return 0
    views = await store.views(d["customer_id"] for d in due if d.get("customer_id"))
    tz = domain.zone(None, settings.default_timezone)
    periods = {f"p_{k}": v for k, v in domain.period_keys(now, tz).items()}
    changes: list[Change] = []
    for doc in due:
        view = views.get(doc["customer_id"])
        refusal = domain.refusal_at_send(view)
        if refusal is not None:
            changes.append(Change(doc["_id"], {"status": "scheduled"},
                                  {"status": "cancelled", "cancel_reason": refusal, "cancelled_at": now},
                                  [events.cancelled(doc, refusal, now)]))
            continue
        language = view.language if view and view.language in domain.LANGUAGES else settings.default_language
        nonce = secrets.token_hex(12)
        expires_at = now + timedelta(days=settings.expire_after_days)
        remind_at = now + timedelta(days=settings.reminder_after_days)
        template = domain.template_of(doc["kind"], doc["template_version"])
        requested = events.requested(doc, language=language, link=_link(deps, doc["_id"], nonce, expires_at),
                                     expires_at=expires_at, template=template.key)
        deps.due.note(remind_at)
        deps.due.note(expires_at)
        changes.append(Change(doc["_id"], {"status": "scheduled"},
                              {"status": "sent", "sent_at": now, "language": language, "link_nonce": nonce,
                               "expires_at": expires_at, "remind_at": remind_at, **periods},
                              [requested]))
    return await store.change_each(changes)


async def remind_due(deps: Deps) -> int:
    """One reminder with the same link, if still unanswered after the reminder delay."""
    store, now = deps.store, deps.clock.now()
    changes: list[Change] = []
    for doc in await store.due_to_remind(now, deps.settings.scheduler_batch):
        if doc["expires_at"] <= now:
            continue
        template = domain.template_of(doc["kind"], doc["template_version"])
        same_link = _link(deps, doc["_id"], doc["link_nonce"], doc["expires_at"])  # same claims: the same token
        reminder = events.requested(doc, language=doc.get("language", "zh"), link=same_link, expires_at=doc["expires_at"],
                                    template=template.key, reminder=True)
        changes.append(Change(doc["_id"], {"status": "sent", "reminded": False}, {"reminded": True, "reminded_at": now},
                              [reminder]))
    return await store.change_each(changes)


async def tick(deps: Deps) -> int:
    """One scheduler pass: send, remind, expire."""
    sent = await send_due(deps)
    reminded = await remind_due(deps)
    expired = await deps.store.expire(deps.clock.now())
    return sent + reminded + expired


async def tick_if_due(deps: Deps) -> int:
    """``tick`` when something can be due (``Deps.due``); -1 when the pass was not needed."""
    return await deps.due.pass_if_due(deps.clock.now(), partial(tick, deps))


async def load_calendar(deps: Deps) -> None:
    """Load the holiday calendar (a module import on first use) at startup, not in the first batch."""
    now = deps.clock.now()
    for year in (now.year, now.year + 1):
        deps.policy.is_working(now.replace(year=year, month=1, day=1).date())

"""Use cases of the notifications service, as plain async functions over ``Deps``.

The life of a message: an inbound event becomes a ``pending`` notification whose id derives from
the event id (``request_notification``); ``dispatch`` claims it (durable ``sending`` state before any
channel is touched), applies the protection rules, asks the customer service for contact details,
renders the template and hands the message to its channel, then records the outcome and its event
in one write. Holds (quiet hours, caps) and transient failures set ``due_at``; the dispatcher loop
(``dispatch_due``) picks them up again when that time comes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from guanxi_shared.clock import Clock
from guanxi_shared.events import CloudEvent, new_event
from guanxi_shared.outbox import OutboxRelay
from guanxi_shared.topics import NOTIFICATION_FAILED, NOTIFICATION_SENT, NOTIFICATION_SUPPRESSED

from . import domain
from .channels import ChannelProvider, OutboundMessage, PermanentDeliveryError, TransientDeliveryError
from .directory import ContactDetails, ContactDirectory, CustomerGone, DirectoryUnavailable, NoConsent, UnknownCustomer
from .domain import Category, Channel, Decision, NotificationSpec, Status
from .settings import NotificationsSettings
from .store import MongoNotificationStore
from .templating import MissingVariables, TemplateInvalid, render

log = logging.getLogger(__name__)
SOURCE = "guanxi/notifications"
# An outcome recorded at least this long before its lease ends is written by the message's id alone
# (``store.finish``): the margin covers clock differences between instances, one of which could
# otherwise take the message over a little early.
LEASE_MARGIN = timedelta(seconds=30)


class Outgoing:
    """Sends of recorded messages, run beside the consumer instead of inside its batch.

    The consumer commits a batch when every message of it is *recorded* (claimed, with its lease),
    which is what at-least-once needs; the sends follow here. Inside the batch, a batch of fresh
    events waited for the slowest send of the batch before the next events were even read, so under a
    steady trickle each email also waited for its predecessors' contact-detail lookups and SMTP sessions.
    One customer's messages still go out in the order their events arrived (each waits for the previous
    one of that customer). A crash loses nothing: an unsent message is ``sending`` with a lease, and the
    dispatcher takes it over when the lease ends.
    """

    def __init__(self, limit: int = 64) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._last: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, customer_id: str, send: Callable[[], Awaitable[None]]) -> None:
        previous = self._last.get(customer_id)

        async def run() -> None:
            if previous is not None:
                await asyncio.wait([previous])  # its outcome is its own; only the order matters here
            async with self._slots:
                try:
                    await send()
                except Exception:
                    log.exception("sending a recorded message failed; the dispatcher retries it after its lease")

        task = asyncio.create_task(run())
        self._last[customer_id] = task
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if self._last.get(customer_id) is t:
                del self._last[customer_id]

        task.add_done_callback(done)

    async def drain(self, timeout: float) -> None:
        """Let in-flight sends finish (shutdown); what is left is taken over after its lease."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)


@dataclass
class Deps:
    settings: NotificationsSettings
    clock: Clock
    store: MongoNotificationStore
    directory: ContactDirectory
    channels: Mapping[Channel, ChannelProvider]
    relay: OutboxRelay
    outgoing: Outgoing = field(default_factory=Outgoing)


# ---------------------------------------------------------------------------------------------
# Intake


async def request_notification(deps: Deps, spec: NotificationSpec, correlation_id: str | None = None) -> str:
    """Record the message (once per trigger event), claimed by us, and start sending it now."""
    now = deps.clock.now()
    nid = spec.notification_id
    # Written already claimed: the durable ``sending`` state exists before any channel is touched, as
    # with ``claim``, without a second write of the document (see ``insert_claimed``).
    doc = await deps.store.insert_claimed({
        "_id": nid, "customer_id": spec.customer_id, "template": spec.template, "category": spec.category.value,
        "variables": spec.variables, "requested_channel": spec.channel.value if spec.channel else None,
        "requested_language": spec.language, "trigger_event_id": spec.trigger_event_id,
        "trigger_type": spec.trigger_type, "correlation_id": correlation_id,
        "due_at": now, "attempts": 0, "holds": 0, "created_at": now, "updated_at": now,
        "history": [{"at": now, "status": Status.pending.value, "reason": f"requested by {spec.trigger_type}"}],
    }, now, timedelta(seconds=deps.settings.sending_lease_seconds))
    if doc is None:
        log.info("notification %s already recorded for event %s; not sending again", nid, spec.trigger_event_id)
        # A redelivery: a message left pending by a crash is finished now; a settled one is not touched.
        await dispatch(deps, nid)
        return nid
    async def send() -> None:
        await _record(deps, doc, await decide_and_send(deps, doc))

    deps.outgoing.start(spec.customer_id, send)
    return nid


# ---------------------------------------------------------------------------------------------
# Dispatch


async def dispatch_due(deps: Deps, limit: int = 100) -> int:
    ids = await deps.store.due_ids(deps.clock.now(), limit)
    for nid in ids:
        await dispatch(deps, nid)
    return len(ids)


async def dispatch_loop(deps: Deps) -> None:
    """Releases held messages and retries when their time comes (clock-driven, survives restarts)."""
    while True:
        try:
            await dispatch_due(deps)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("dispatch pass failed; retrying")
        await asyncio.sleep(deps.settings.dispatch_interval_seconds)


async def dispatch(deps: Deps, notification_id: str) -> Status | None:
    now = deps.clock.now()
    doc = await deps.store.claim(notification_id, now, timedelta(seconds=deps.settings.sending_lease_seconds))
    if doc is None:
        return None  # not due, already settled, or another instance is sending it
    decision = await decide_and_send(deps, doc)
    await _record(deps, doc, decision)
    return decision.status


async def decide_and_send(deps: Deps, doc: dict[str, Any]) -> Decision:
    settings, now = deps.settings, deps.clock.now()
    customer_id: str = doc["customer_id"]
    category = Category(doc["category"])
    recipient = await deps.store.recipient(customer_id) or {}

    if recipient.get("erased"):
        return Decision(Status.suppressed, "erased")
    refusal = domain.consent_refusal(category, recipient.get("consents"))
    if refusal:
        return Decision(Status.suppressed, refusal)

    if category is not Category.service:
        # Frequency cap first: a capped message released later still respects quiet hours then.
        window = timedelta(hours=settings.cap_window_hours)
        sent = await deps.store.counted_sends(customer_id, category.value, now - window, doc["_id"])
        release = domain.frequency_cap_release(sent, settings.cap_for(category.value), window, now)
        if release is not None:
            return Decision(Status.held, "frequency_cap", due_at=release)
        tz = domain.zone(recipient.get("timezone"), settings.default_timezone)
        quiet_end = domain.quiet_hours_end(now, tz, domain.parse_clock_time(settings.quiet_hours_start),
                                           domain.parse_clock_time(settings.quiet_hours_end))
        if quiet_end is not None:
            return Decision(Status.held, "quiet_hours", due_at=quiet_end)

    requested = Channel(doc["requested_channel"]) if doc.get("requested_channel") else None
    opted_out = {*recipient.get("opted_out", []), *recipient.get("opted_out_upstream", [])}
    candidates, skipped = domain.channel_candidates(requested, recipient.get("preferred_channels"), opted_out,
                                                    deps.channels.keys())
    if not candidates:
        reason = "opted_out:" + ",".join(c.value for c in skipped) if skipped else "no_channel_available"
        return Decision(Status.suppressed, reason)

    try:
        contact = await deps.directory.contact_details(customer_id, category.value, [c.value for c in candidates])
    except NoConsent:
        return Decision(Status.suppressed, f"no_consent:{category.value}")
    except CustomerGone:
        return Decision(Status.suppressed, "erased")
    except UnknownCustomer as exc:
        return Decision(Status.failed, f"unknown_customer: {exc}")
    except DirectoryUnavailable as exc:
        return _retry_or_fail(deps, doc, f"contact_details_unavailable: {exc}")

    if not recipient.get("timezone") and (contact.timezone or contact.language):
        # Remember where the customer lives for the next quiet-hours check (not personal data).
        await deps.store.learn_profile(customer_id, contact.language, contact.timezone, None)
    return await _deliver(deps, doc, category, candidates, contact, recipient)


async def _deliver(deps: Deps, doc: dict[str, Any], category: Category, candidates: list[Channel],
                   contact: ContactDetails, recipient: dict[str, Any]) -> Decision:
    # The customer service's opt-outs count too, and at once: it may know of one we have not seen yet.
    blocked = set(contact.channels_opted_out)
    details = contact.as_contact()
    chosen: tuple[Channel, str] | None = None
    for channel in candidates:
        address = domain.address_for(channel, details)
        if channel.value not in blocked and address:
            chosen = (channel, address)
            break
    if chosen is None:
        opted = [c.value for c in candidates if c.value in blocked]
        return Decision(Status.suppressed, "opted_out:" + ",".join(opted) if opted else "no_contact_details")
    channel, address = chosen

    language = domain.choose_language(doc.get("requested_language"), recipient.get("language"), contact.language,
                                      deps.settings.default_language)
    template = await deps.store.latest_template(doc["template"], language)
    if template is None:  # fall back to the other language rather than send nothing
        for other in domain.LANGUAGES:
            template = await deps.store.latest_template(doc["template"], other)
            if template is not None:
                language = other
                break
    if template is None:
        return Decision(Status.failed, f"template_missing: {doc['template']}")

    variables = {**doc.get("variables", {}), "name": contact.name or "", "customer_id": doc["customer_id"],
                 "member_level": contact.member_level or recipient.get("member_level") or ""}
    try:
        rendered = render(template["subject"], template["body"], variables, template.get("required_variables", []))
    except (MissingVariables, TemplateInvalid) as exc:
        return Decision(Status.failed, f"template_error: {exc}", language=language, template_version=template["version"])

    message = OutboundMessage(doc["_id"], doc["customer_id"], channel, address, language, rendered.subject,
                              rendered.body, category.value)
    masked = domain.mask_address(channel, address)
    common = {"channel": channel, "address_masked": masked, "language": language, "template_version": template["version"]}
    try:
        await deps.channels[channel].send(message)
    except PermanentDeliveryError as exc:
        return Decision(Status.failed, f"permanent: {exc}", count_attempt=True, **common)
    except TransientDeliveryError as exc:
        decision = _retry_or_fail(deps, doc, f"transient: {exc}")
        decision.channel, decision.address_masked = channel, masked
        decision.language, decision.template_version = language, template["version"]
        return decision
    return Decision(Status.sent, None, count_attempt=True, **common)


def _retry_or_fail(deps: Deps, doc: dict[str, Any], reason: str) -> Decision:
    attempt = int(doc.get("attempts", 0)) + 1
    if attempt >= deps.settings.max_attempts:
        return Decision(Status.failed, f"gave_up after {attempt} attempts: {reason}", count_attempt=True)
    delay = domain.retry_delay(attempt, deps.settings.retry_backoff_seconds)
    return Decision(Status.pending, reason, due_at=deps.clock.now() + delay, count_attempt=True)


def reason_code(reason: str | None) -> str | None:
    """The stable part of a reason ("no_consent", "quiet_hours", "permanent"...), for KPIs."""
    if not reason:
        return None
    return reason.split(":")[0].split(" ")[0]


async def _record(deps: Deps, doc: dict[str, Any], decision: Decision) -> None:
    now = deps.clock.now()
    nid = doc["_id"]
    fields: dict[str, Any] = {"status": decision.status.value, "reason": decision.reason,
                              "reason_code": reason_code(decision.reason), "updated_at": now}
    if decision.due_at is not None:
        fields["due_at"] = decision.due_at
    for name in ("address_masked", "language", "template_version"):
        value = getattr(decision, name)
        if value is not None:
            fields[name] = value
    if decision.channel is not None:
        fields["channel"] = decision.channel.value
    if decision.status is Status.sent:
        fields["sent_at"] = now
    holds = int(doc.get("holds", 0))
    if decision.status is Status.held:
        holds += 1
        fields["holds"] = holds
        fields["held_until"] = decision.due_at
    events = _outcome_events(doc, decision, fields, holds, now)
    history = {"at": now, "status": decision.status.value, "reason": decision.reason}
    lease_until: datetime | None = doc.get("lease_until")
    lease_running = lease_until is not None and now + LEASE_MARGIN < lease_until
    outbox = await deps.store.finish(nid, doc["claim"], fields, events, history, decision.count_attempt,
                                     lease_running=lease_running)
    if outbox is None:
        log.warning("notification %s changed while it was being sent (lease expired?)", nid)
    elif outbox:
        # Published from what was just stored (no read-back) and cleared once sending is quiet
        # (``OutboxRelay.written``): both were further commands per message on the one connection.
        await deps.relay.written(deps.store.notifications, {nid: outbox})


def _outcome_events(doc: dict[str, Any], decision: Decision, fields: dict[str, Any], holds: int,
                    now: datetime) -> list[CloudEvent]:
    kinds: dict[Status, tuple[str, str, int]] = {
        Status.sent: (NOTIFICATION_SENT, "sent", 0),
        Status.failed: (NOTIFICATION_FAILED, "failed", 0),
        Status.suppressed: (NOTIFICATION_SUPPRESSED, "suppressed", 0),
        Status.held: (NOTIFICATION_SUPPRESSED, "held", holds),
    }
    if decision.status not in kinds:
        return []  # a retry scheduled: nothing final to announce yet
    topic, kind, n = kinds[decision.status]
    attempts = int(doc.get("attempts", 0)) + (1 if decision.count_attempt else 0)
    data = {
        "notification_id": doc["_id"], "customer_id": doc["customer_id"], "template": doc["template"],
        "category": doc["category"], "channel": fields.get("channel"), "address_masked": fields.get("address_masked"),
        "reason": decision.reason, "at": now.isoformat(), "status": decision.status.value,
        "held_until": decision.due_at.isoformat() if decision.status is Status.held and decision.due_at else None,
        "language": fields.get("language"), "template_version": fields.get("template_version"), "attempts": attempts,
        "trigger_event_id": doc.get("trigger_event_id"), "trigger_type": doc.get("trigger_type"),
    }
    return [new_event(topic, doc["customer_id"], {k: v for k, v in data.items() if v is not None}, source=SOURCE,
                      id=domain.event_id(doc["_id"], kind, n), time=now,
                      correlationid=doc.get("correlation_id") or doc.get("trigger_event_id"),
                      causationid=doc.get("trigger_event_id"))]


# ---------------------------------------------------------------------------------------------
# What we learn about customers


async def learn_registration(deps: Deps, customer_id: str, consents: dict[str, bool], language: str, timezone: str,
                             member_level: str, at: datetime) -> None:
    await deps.store.learn_profile(customer_id, language, timezone, member_level)
    await deps.store.learn_consents(customer_id, consents, at)


async def learn_consent(deps: Deps, customer_id: str, consents: dict[str, bool], channels_opted_out: list[str],
                        at: datetime) -> None:
    await deps.store.learn_consents(customer_id, consents, at, channels_opted_out)


async def erase_customer(deps: Deps, customer_id: str) -> None:
    """Stop everything for the customer, then cut the log from the person."""
    now = deps.clock.now()
    await deps.store.mark_erased(customer_id, now)
    await deps.store.cancel_open(customer_id, "erased", now)
    await deps.store.anonymise(customer_id, domain.pseudonym(customer_id), now)


# ---------------------------------------------------------------------------------------------
# Reading


def notification_view(doc: dict[str, Any]) -> dict[str, Any]:
    def iso(value: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime) else value

    keys = ("customer_id", "template", "template_version", "language", "category", "channel", "status", "reason",
            "address_masked", "attempts", "trigger_type", "trigger_event_id", "requested_channel")
    view = {"id": doc["_id"], **{k: doc.get(k) for k in keys}}
    for k in ("created_at", "updated_at", "sent_at", "held_until"):
        view[k] = iso(doc.get(k))
    view["next_attempt_at"] = iso(doc.get("due_at")) if doc.get("status") in (Status.pending, Status.held) else None
    view["history"] = [{**h, "at": iso(h.get("at"))} for h in doc.get("history", [])]
    return view


def template_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in doc.items() if k != "_id"} | {"id": doc["_id"]}


"""Sending: from a trigger event to a message handed to its channel, with its outcome recorded.

The life of a message: an inbound event becomes a notification whose id derives from the event id,
recorded already claimed (``request_notification``); the send applies the protection rules, asks the
directory for contact details, renders the template and hands the message to its channel, then
records the outcome and its event in one write (``store.finish``). Holds (quiet hours, caps) and
transient failures set ``due_at``; the dispatcher (``dispatch_due``, run periodically) claims them
again when that time comes, and takes over a message whose sender's lease ran out.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from guanxi_shared import topics as t
from guanxi_shared.contracts.complaints import ComplaintStep
from guanxi_shared.contracts.customer import CustomerCareDue
from guanxi_shared.contracts.notifications import NotificationRequested
from guanxi_shared.contracts.surveys import SurveyRequested
from guanxi_shared.events import CloudEvent, InvalidEvent, new_event, parse_data

from .. import domain
from ..domain import Category, Channel, Decision, NotificationSpec, Status
from ..domain.delivery import (
    ContactDetails,
    CustomerGone,
    DirectoryUnavailable,
    NoConsent,
    OutboundMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownCustomer,
    address_for,
)
from ..domain.templating import MissingVariables, TemplateInvalid, render
from .deps import Deps

log = logging.getLogger(__name__)
SOURCE = "guanxi/notifications"
# An outcome recorded at least this long before its lease ends is written by the message's id alone
# (``store.finish``): the margin covers clock differences between instances, one of which could
# otherwise take the message over a little early.
LEASE_MARGIN = timedelta(seconds=30)


# ---------------------------------------------------------------------------------------------
# Trigger events → what to send


async def on_complaint_step(deps: Deps, event: CloudEvent) -> None:
    step = parse_data(event, ComplaintStep)
    spec = NotificationSpec(step.customer_id, domain.COMPLAINT_TEMPLATES[event.type], Category.service,
                            domain.complaint_variables(event.data), event.id, event.type)
    await request_notification(deps, spec, event.correlationid)


async def on_survey_requested(deps: Deps, event: CloudEvent) -> None:
    survey = parse_data(event, SurveyRequested)
    variables = {"survey_id": survey.survey_id, "link": survey.link, "kind": survey.kind,
                 "expires_at": domain.stringify(survey.expires_at), "reminder": survey.reminder}
    spec = NotificationSpec(survey.customer_id, "survey_invitation", Category.survey, variables, event.id, event.type,
                            language=survey.language)
    await request_notification(deps, spec, event.correlationid)


async def on_care_due(deps: Deps, event: CloudEvent) -> None:
    care = parse_data(event, CustomerCareDue)
    mapped = domain.CARE_TEMPLATES.get(care.occasion)
    if mapped is None:
        return  # a task for staff (e.g. a visit commitment), nothing to tell the customer
    template, category = mapped
    variables = {"occasion": care.occasion, "occasion_id": care.occasion_id, **care.details}
    spec = NotificationSpec(care.customer_id, template, category, variables, event.id, event.type)
    await request_notification(deps, spec, event.correlationid)


async def on_notification_requested(deps: Deps, event: CloudEvent) -> None:
    request = parse_data(event, NotificationRequested)
    try:
        channel = Channel(request.channel) if request.channel else None
    except ValueError as exc:
        raise InvalidEvent(f"unknown channel {request.channel!r}; use one of "
                           + ", ".join(c.value for c in Channel)) from exc
    spec = NotificationSpec(request.customer_id, request.template, Category(request.category), request.variables,
                            event.id, event.type, channel=channel, language=request.language)
    await request_notification(deps, spec, event.correlationid)


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
    """One dispatcher pass: holds and retries whose time has come, and messages whose sender died."""
    ids = await deps.store.due_ids(deps.clock.now(), limit)
    for nid in ids:
        await dispatch(deps, nid)
    return len(ids)


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
    chosen: tuple[Channel, str] | None = None
    for channel in candidates:
        address = address_for(channel, contact)
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


async def _record(deps: Deps, doc: dict[str, Any], decision: Decision) -> None:
    now = deps.clock.now()
    nid = doc["_id"]
    fields: dict[str, Any] = {"status": decision.status.value, "reason": decision.reason,
                              "reason_code": domain.reason_code(decision.reason), "updated_at": now}
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
    if not await deps.store.finish(nid, doc["claim"], fields, events, history, decision.count_attempt,
                                   lease_running=lease_running):
        log.warning("notification %s changed while it was being sent (lease expired?)", nid)


def _outcome_events(doc: dict[str, Any], decision: Decision, fields: dict[str, Any], holds: int,
                    now: datetime) -> list[CloudEvent]:
    kinds: dict[Status, tuple[str, str, int]] = {
        Status.sent: (t.NOTIFICATION_SENT, "sent", 0),
        Status.failed: (t.NOTIFICATION_FAILED, "failed", 0),
        Status.suppressed: (t.NOTIFICATION_SUPPRESSED, "suppressed", 0),
        Status.held: (t.NOTIFICATION_SUPPRESSED, "held", holds),
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

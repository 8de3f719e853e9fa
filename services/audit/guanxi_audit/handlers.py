"""Use cases of the audit service: plain async functions over ``Deps``."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from guanxi_shared.clock import Clock
from guanxi_shared.contracts.audit import AccessRecorded, AuditViolation
from guanxi_shared.contracts.customer import CustomerErased, CustomerPiiAccessed
from guanxi_shared.contracts.notifications import NotificationOutcome
from guanxi_shared.events import CloudEvent, InvalidEvent, new_event, parse_data
from guanxi_shared.messaging import Delivery, PermanentError, is_transient
from guanxi_shared.topics import (
    ACCESS_RECORDED,
    AUDIT_VIOLATION,
    CUSTOMER_ERASED,
    CUSTOMER_PII_ACCESSED,
    NOTIFICATION_FAILED,
    NOTIFICATION_SENT,
)
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from . import domain
from .settings import AuditSettings
from .store import AuditStore

log = logging.getLogger(__name__)
tracer = trace.get_tracer("guanxi.audit")

SOURCE = "guanxi/audit"
VIOLATION_NS = uuid.UUID("6f1c2a5e-6a57-4c55-9d1e-7d8f0c3b2a11")
CHAIN_EPISODE = "chain_broken"
# A broken chain stays one episode until a verification passes again.
OPEN_ENDED = timedelta(days=365 * 100)
SETTLE_BATCH = 1000  # reads one settling call decides at most; the next call goes on


@dataclass(frozen=True)
class Trigger:
    """The event a violation is caused by: its id, subject and correlation."""

    id: str
    subject: str
    correlationid: str | None

    @classmethod
    def of(cls, event: CloudEvent) -> Trigger:
        return cls(event.id, event.subject, event.correlationid)

    @classmethod
    def of_read(cls, read: domain.PiiRead) -> Trigger:
        return cls(read.event_id, read.subject, read.correlationid)


@dataclass
class Deps:
    store: AuditStore
    settings: AuditSettings
    clock: Clock

    @property
    def key(self) -> str:
        return self.settings.checkpoint_key.get_secret_value()

    @property
    def send_window(self) -> timedelta:
        """How long after a service's read the send that justifies it may come."""
        return timedelta(minutes=self.settings.send_justifies_read_minutes)


# --- capture -----------------------------------------------------------------------------------

async def capture(deps: Deps, deliveries: list[Delivery]) -> list[tuple[Delivery, BaseException]]:
    """Append a batch to the chain (once per event id), then apply the rules to each event."""
    # One span per batch, linked to every producer's span, so each interaction's trace shows its audit.
    links = [Link(trace.get_current_span(d.trace_context).get_span_context()) for d in deliveries]
    with tracer.start_as_current_span("audit capture", kind=SpanKind.CONSUMER, links=[lk for lk in links if lk.context.is_valid],
                                      attributes={"messaging.batch.message_count": len(deliveries)}):
        return await _capture(deps, deliveries)


async def _capture(deps: Deps, deliveries: list[Delivery]) -> list[tuple[Delivery, BaseException]]:
    now = deps.clock.now()
    captures = [domain.Capture.of(d.event, domain.trace_id_of(d.headers), now) for d in deliveries]
    failures: list[tuple[Delivery, BaseException]] = []
    try:
        await deps.store.append(captures)
    except Exception as exc:
        if is_transient(exc):
            return [(d, exc) for d in deliveries]
        # One record the store refuses must not hold up the rest: append them one by one.
        log.warning("batch append refused (%r); appending one by one", exc)
        for delivery, one in zip(deliveries, captures, strict=True):
            try:
                await deps.store.append([one])
            except Exception as single:
                failures.append((delivery, single if is_transient(single) else PermanentError(repr(single))))
    failed = {id(d) for d, _ in failures}
    try:
        await _redact_late_arrivals(deps, [d for d in deliveries if id(d) not in failed])
    except Exception as exc:
        return [*failures, *((d, exc) for d in deliveries if id(d) not in failed)]
    for delivery in deliveries:
        if id(delivery) in failed:
            continue
        try:
            await apply_rules(deps, delivery.event)
        except Exception as exc:
            failures.append((delivery, exc))
    return failures


async def apply_rules(deps: Deps, event: CloudEvent) -> None:
    """Rules keyed by event type; each is idempotent, so a redelivered event changes nothing."""
    try:
        if event.type == CUSTOMER_PII_ACCESSED:
            await _bulk_pii_rule(deps, event, parse_data(event, CustomerPiiAccessed))
        elif event.type in (NOTIFICATION_SENT, NOTIFICATION_FAILED):
            await _send_justifies_reads(deps, event, parse_data(event, NotificationOutcome))
        elif event.type == ACCESS_RECORDED:
            await _role_rule(deps, event, parse_data(event, AccessRecorded))
        elif event.type == CUSTOMER_ERASED:
            await erase(deps, parse_data(event, CustomerErased).customer_id, event.subject)
    except InvalidEvent as exc:
        # The event is in the trail as it came; a rule cannot judge a malformed one.
        log.warning("rule skipped for %s %s: %s", event.type, event.id, exc)


async def _bulk_pii_rule(deps: Deps, event: CloudEvent, accessed: CustomerPiiAccessed) -> None:
    """A staff read counts at once (the rule as it always was); a service's read of contact details waits
    for the send it was for, and counts only if none comes within the window."""
    read = domain.PiiRead.of(event.id, event.subject, event.correlationid, actor=accessed.actor,
                             role=accessed.actor_role, via=accessed.via, customer_id=accessed.customer_id,
                             purpose=accessed.purpose, accessed_at=accessed.accessed_at,
                             captured_at=deps.clock.now(), window=deps.send_window)
    await deps.store.remember_pii_read(read)
    if read.status is not domain.ReadStatus.pending:
        await _check_bulk(deps, read, Trigger.of(event))
        return
    # Write first, look second (the send may have been captured first: topics are not ordered with each other).
    send = await deps.store.find_send(read.customer_id, read.purpose, *domain.send_span(read.at, deps.send_window))
    if send is not None:
        await _justify(deps, send)
    # The actor's next read is also where its earlier unjustified reads are settled (besides the periodic pass).
    await settle_pii_reads(deps, actor=read.actor)


async def _send_justifies_reads(deps: Deps, event: CloudEvent, outcome: NotificationOutcome) -> None:
    if not domain.justifying_send(event.type, outcome.channel):
        return
    send = domain.Send(event.id, outcome.customer_id, outcome.category, domain.as_utc_ms(outcome.at))
    await deps.store.remember_send(send)
    await _justify(deps, send)


async def _justify(deps: Deps, send: domain.Send) -> None:
    since, until = domain.justified_span(send.at, deps.send_window)
    await deps.store.justify_reads(send.customer_id, send.category, since, until, send.event_id)


async def settle_pii_reads(deps: Deps, actor: str | None = None, limit: int = SETTLE_BATCH) -> int:
    """Service reads whose window has passed with no send count from now on: the bulk rule is checked at
    each one's time, oldest first. Idempotent and crash-safe: a read is marked lapsed, checked, then
    settled, and a lapsed read left unchecked is taken up again. How many reads were decided."""
    due = await deps.store.due_pii_reads(deps.clock.now(), limit, actor)
    decided = 0
    for read in due:
        if read.status is domain.ReadStatus.pending and not await deps.store.lapse_pii_read(read.event_id):
            continue  # a send justified it in the meantime
        await _check_bulk(deps, read, Trigger.of_read(read))
        await deps.store.settle_pii_read(read.event_id)
        decided += 1
    return decided


async def _check_bulk(deps: Deps, read: domain.PiiRead, trigger: Trigger) -> None:
    s = deps.settings
    window = timedelta(seconds=s.bulk_pii_window_seconds)
    count = await deps.store.distinct_customers_read(read.actor, read.at - window, read.at)
    if count <= s.bulk_pii_max_customers:
        return
    detail = (f"{read.actor} ({read.role}) read clear personal data of {count} customers within "
              f"{s.bulk_pii_window_seconds}s (limit {s.bulk_pii_max_customers})")
    if read.decide_by is not None:  # a service read that no send justified
        detail += f"; service reads not followed by a send within {s.send_justifies_read_minutes:g} min"
    await _raise(deps, f"bulk_pii_read:{read.actor}", "bulk_pii_read", read.actor, detail, read.at,
                 read.at + window, trigger=trigger)


async def _role_rule(deps: Deps, event: CloudEvent, access: AccessRecorded) -> None:
    reason = domain.access_violation(access.role, access.path, access.status, deps.settings.role_paths)
    if reason is None:
        return
    at = domain.as_utc_ms(access.at)
    window = timedelta(seconds=deps.settings.role_violation_window_seconds)
    await _raise(deps, f"role_violation:{access.actor}", "role_violation", access.actor,
                 f"{access.actor}: {reason}", at, at + window, trigger=Trigger.of(event))


async def _raise(deps: Deps, episode: str, rule: str, actor: str | None, detail: str, at: datetime,
                 until: datetime, *, trigger: Trigger | None = None, extra: dict[str, Any] | None = None) -> bool:
    """Publish ``audit.violation`` unless this episode already has one (the episode's key decides)."""
    violation_id = str(uuid.uuid5(VIOLATION_NS, f"{episode}:{at.isoformat()}"))
    payload = AuditViolation(violation_id=violation_id, rule=rule, actor=actor, detail=detail, at=at,
                             event_id=trigger.id if trigger else None, **(extra or {}))
    data = payload.model_dump(mode="json", exclude_none=True)
    subject = trigger.subject if trigger else "audit"
    event = new_event(AUDIT_VIOLATION, subject, data, source=SOURCE, id=violation_id,
                      causationid=trigger.id if trigger else None,
                      correlationid=(trigger.correlationid or trigger.id) if trigger else None)
    opened = await deps.store.open_episode(episode, at, until, event)
    if opened:
        log.warning("violation %s: %s", rule, detail)
    return opened


# --- erasure -----------------------------------------------------------------------------------

async def _redact_late_arrivals(deps: Deps, deliveries: list[Delivery]) -> None:
    """Redact events that arrive after their customer's erasure.

    Topics are not ordered with each other, so a complaint can land after ``customer.erased``.
    Both sides write first and look second (erasure: record, then scan; capture: record, then
    check), so whichever comes last sees the other and no clear value is left behind.
    """
    subjects = sorted({d.event.subject for d in deliveries if d.event.type != CUSTOMER_ERASED})
    if not subjects:
        return
    for subject in await deps.store.erased_among(subjects):
        await deps.store.redact_subject(subject, deps.settings.personal_fields, deps.settings.erasure_marker)


async def erase(deps: Deps, customer_id: str, subject: str) -> int:
    count = 0
    for who in {customer_id, subject}:
        count += await deps.store.redact_subject(who, deps.settings.personal_fields, deps.settings.erasure_marker)
    return count


# --- verification and checkpoints --------------------------------------------------------------

async def _start(deps: Deps) -> tuple[int, str, domain.Break | None]:
    anchor = await deps.store.anchor()
    if anchor is None:
        return 0, domain.GENESIS_HASH, None
    seq, hash_ = int(anchor.get("seq", 0)), str(anchor.get("hash", ""))
    sealed = {**anchor, "_id": seq}
    if not domain.checkpoint_valid(deps.key, sealed):
        return seq, hash_, domain.Break(seq, "archive anchor seal (HMAC) is invalid")
    return seq, hash_, None


async def verify(deps: Deps) -> dict[str, Any]:
    """Re-walk the whole chain; a break opens a ``chain_broken`` episode, a clean walk closes it."""
    s = deps.settings
    start_seq, start_hash, anchor_broken = await _start(deps)
    verifier = domain.ChainVerifier(
        deps.key, await deps.store.all_checkpoints(), start_seq=start_seq, start_hash=start_hash,
        erased_subjects=await deps.store.erased_subjects(), personal_fields=s.personal_fields,
        marker=s.erasure_marker)
    if anchor_broken is None:
        async for record in deps.store.walk(start_seq, s.verify_page_size):
            if not verifier.check(record):
                break
    broken = anchor_broken or verifier.finish(await deps.store.head_seq())
    now = deps.clock.now()
    result: dict[str, Any] = {
        "ok": broken is None, "checked": verifier.checked,
        "first_broken": broken.as_dict() if broken else None,
        "start_seq": start_seq, "last_seq": verifier.last_seq,
        "checkpoints_checked": verifier.checkpoints_checked, "verified_at": now.isoformat(),
    }
    if broken is not None:
        detail = f"audit chain broken at seq {broken.seq}: {broken.reason}"
        await _raise(deps, CHAIN_EPISODE, "chain_broken", None, detail, domain.as_utc_ms(now), now + OPEN_ENDED,
                     extra={"seq": broken.seq})
    else:
        await deps.store.close_episode(CHAIN_EPISODE)
    return result


async def seal_checkpoint(deps: Deps) -> int | None:
    """Seal the tail with an HMAC checkpoint, after checking the records since the last one."""
    last = await deps.store.last_checkpoint_seq()
    start_seq, start_hash, broken = await _start(deps)
    if broken is not None:
        return None
    if last > start_seq:
        previous = await deps.store.record_at(last)
        if previous is None:
            return None  # the sealed record is gone: verification reports it
        start_seq, start_hash = last, str(previous["hash"])
    verifier = domain.ChainVerifier(
        deps.key, [], start_seq=start_seq, start_hash=start_hash,
        erased_subjects=await deps.store.erased_subjects(), personal_fields=deps.settings.personal_fields,
        marker=deps.settings.erasure_marker)
    async for record in deps.store.walk(start_seq, deps.settings.verify_page_size):
        if not verifier.check(record):
            log.error("not sealing: chain broken at %s", verifier.broken)
            return None
    if verifier.last_seq <= last:
        return None
    await deps.store.save_checkpoint(domain.make_checkpoint(deps.key, verifier.last_seq, verifier.last_hash,
                                                            deps.clock.now()))
    return verifier.last_seq


# --- retention ---------------------------------------------------------------------------------

async def archive_expired(deps: Deps, limit: int = 1000) -> int:
    """Move the oldest records past the retention period out of the chain, behind a sealed anchor.

    Only a prefix of the chain older than ``max(archive_after_days, retention_min_days)`` moves,
    and only after it verifies; younger records are never touched.
    """
    s = deps.settings
    if s.archive_after_days is None:
        return 0
    days = max(s.archive_after_days, s.retention_min_days)
    cutoff = deps.clock.now() - timedelta(days=days)
    start_seq, start_hash, broken = await _start(deps)
    if broken is not None:
        return 0
    prefix = await deps.store.expired_prefix(start_seq, cutoff, limit)
    if not prefix:
        return 0
    verifier = domain.ChainVerifier(
        deps.key, [], start_seq=start_seq, start_hash=start_hash,
        erased_subjects=await deps.store.erased_subjects(), personal_fields=s.personal_fields,
        marker=s.erasure_marker)
    for record in prefix:
        if not verifier.check(record):
            log.error("not archiving: chain broken at %s", verifier.broken)
            return 0
    last = prefix[-1]
    anchor = domain.make_checkpoint(deps.key, int(last["seq"]), str(last["hash"]), deps.clock.now())
    await deps.store.archive_prefix(prefix, {**anchor, "_id": "anchor"})
    return len(prefix)


# --- queries -----------------------------------------------------------------------------------

def view(record: dict[str, Any]) -> dict[str, Any]:
    """What an auditor sees of a record (salts stay inside: they would let erased values be guessed)."""
    out: dict[str, Any] = {"event_id": record["_id"]}
    for name in ("seq", "type", "source", "subject", "actor", "time", "recorded_at", "trace_id", "dataversion",
                 "correlationid", "causationid", "data", "redacted", "digests", "prev_hash", "hash"):
        value = record.get(name)
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


async def find_records(deps: Deps, query: domain.RecordQuery, cursor: int, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    rows = await deps.store.query(query, cursor, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return [view(r) for r in rows], (str(rows[-1]["seq"]) if more and rows else None)


async def export_records(deps: Deps, query: domain.RecordQuery, page: int = 500) -> AsyncIterator[dict[str, Any]]:
    cursor = 0
    while True:
        rows = await deps.store.query(query, cursor, page)
        for row in rows:
            yield view(row)
        if len(rows) < page:
            return
        cursor = int(rows[-1]["seq"])


"""The audit trail's rules: canonical form, hash chain, checkpoints, redaction, violation rules.

Pure: no I/O. A stored record is a plain dict (the Mongo document); everything here can be
recomputed from it, which is what verification does.

Hash design (see README "Tamper evidence"): the record hash covers the envelope and, for the
payload, one salted digest per top-level field of ``data`` rather than the values themselves.
Erasure replaces a personal value by a marker and drops that field's salt but keeps its digest,
so the chain still verifies while the erased value can no longer be confirmed by guessing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from guanxi_shared.errors import Invalid

GENESIS_HASH = "0" * 64
HASHED_FIELDS: tuple[str, ...] = (
    "seq", "prev_hash", "_id", "type", "source", "subject", "time", "dataversion",
    "correlationid", "causationid", "actor", "trace_id", "recorded_at", "digests",
)
# Payload fields naming who acted, in the order they are tried.
ACTOR_FIELDS: tuple[str, ...] = ("actor", "agent_id", "actor_id", "owner", "handler")


def canonical(value: Any) -> bytes:
    """Sorted-key compact JSON (UTF-8); datetimes as UTC RFC 3339 to the millisecond (BSON precision)."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc_ms(value).isoformat(timespec="milliseconds")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def as_utc_ms(moment: datetime) -> datetime:
    """The instant as MongoDB will give it back: UTC, milliseconds."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def field_digest(salt: str, value: Any) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + canonical(value)).hexdigest()


def record_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({k: record.get(k) for k in HASHED_FIELDS})).hexdigest()


def trace_id_of(headers: Mapping[str, str]) -> str | None:
    """The trace id of a W3C ``traceparent`` header (``00-<trace>-<span>-<flags>``)."""
    parts = (headers.get("traceparent") or "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
        return parts[1].lower()
    return None


def storable(value: Any) -> Any:
    """The payload with keys a document store accepts: ``.`` and a leading ``$`` become full-width.

    Producers may send any JSON; the trail must still record it (and hash exactly what it stores).
    """
    if isinstance(value, Mapping):
        return {_safe_key(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def _safe_key(key: str) -> str:
    key = key.replace(".", "\uff0e")
    return "\uff04" + key[1:] if key.startswith("$") else key


def actor_of(data: Mapping[str, Any]) -> str | None:
    for name in ACTOR_FIELDS:
        value = data.get(name)
        if isinstance(value, str) and value:
            return value
    return None


@dataclass(frozen=True)
class Capture:
    """An event about to be appended: everything of the record except its place in the chain."""

    event_id: str
    type: str
    source: str
    subject: str
    time: datetime
    dataversion: int
    correlationid: str | None
    causationid: str | None
    data: dict[str, Any]
    trace_id: str | None
    recorded_at: datetime
    salts: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, event: Any, trace_id: str | None, recorded_at: datetime) -> Capture:
        """From a CloudEvent; salts are drawn once so a retried append seals the same digests."""
        data = storable(dict(event.data))
        return cls(
            event_id=event.id, type=event.type, source=event.source, subject=event.subject,
            time=as_utc_ms(event.time), dataversion=event.dataversion, correlationid=event.correlationid,
            causationid=event.causationid, data=data, trace_id=trace_id, recorded_at=as_utc_ms(recorded_at),
            salts={k: secrets.token_hex(16) for k in data},
        )

    @property
    def actor(self) -> str | None:
        return actor_of(self.data)


def seal(capture: Capture, seq: int, prev_hash: str) -> dict[str, Any]:
    """The stored record for ``capture`` at position ``seq`` after a record hashing to ``prev_hash``."""
    record: dict[str, Any] = {
        "_id": capture.event_id, "seq": seq, "prev_hash": prev_hash, "type": capture.type,
        "source": capture.source, "subject": capture.subject, "time": capture.time,
        "dataversion": capture.dataversion, "correlationid": capture.correlationid,
        "causationid": capture.causationid, "actor": capture.actor, "trace_id": capture.trace_id,
        "recorded_at": capture.recorded_at, "data": capture.data, "salts": dict(capture.salts),
        "digests": {k: field_digest(capture.salts[k], v) for k, v in capture.data.items()},
        "redacted": [],
    }
    record["hash"] = record_hash(record)
    return record


def seal_chain(captures: Iterable[Capture], after_seq: int, after_hash: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seq, prev = after_seq, after_hash
    for capture in captures:
        seq += 1
        record = seal(capture, seq, prev)
        prev = record["hash"]
        out.append(record)
    return out


# --- checkpoints -------------------------------------------------------------------------------

def checkpoint_mac(key: str, seq: int, hash_: str, sealed_at: datetime) -> str:
    message = canonical({"seq": seq, "hash": hash_, "sealed_at": sealed_at})
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def make_checkpoint(key: str, seq: int, hash_: str, sealed_at: datetime) -> dict[str, Any]:
    sealed_at = as_utc_ms(sealed_at)
    return {"_id": seq, "seq": seq, "hash": hash_, "sealed_at": sealed_at,
            "mac": checkpoint_mac(key, seq, hash_, sealed_at)}


def checkpoint_valid(key: str, checkpoint: Mapping[str, Any]) -> bool:
    try:
        expected = checkpoint_mac(key, int(checkpoint["seq"]), str(checkpoint["hash"]), checkpoint["sealed_at"])
    except (KeyError, TypeError, ValueError):
        return False
    return hmac.compare_digest(expected, str(checkpoint.get("mac", ""))) and checkpoint.get("_id") == checkpoint["seq"]


# --- verification ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Break:
    """The first record where the chain does not hold, and why."""

    seq: int
    reason: str
    event_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "event_id": self.event_id, "reason": self.reason}


class ChainVerifier:
    """Re-walks the chain record by record (in ``seq`` order) and stops at the first broken link.

    ``start`` is where the walk begins: the genesis, or the archive anchor after a retention run.
    ``erased_subjects`` are customers with a ``customer.erased`` record: only their records may
    carry redactions, and only of ``personal_fields``, so "redacting" is no way to hide an edit.
    """

    def __init__(self, key: str, checkpoints: Iterable[Mapping[str, Any]], *, start_seq: int = 0,
                 start_hash: str = GENESIS_HASH, erased_subjects: Iterable[str] = (),
                 personal_fields: Iterable[str] = (), marker: str = "[erased]") -> None:
        self.last_seq = start_seq
        self.last_hash = start_hash
        self.checked = 0
        self.broken: Break | None = None
        self.erased = set(erased_subjects)
        self.personal = set(personal_fields)
        self.marker = marker
        self.checkpoints: dict[int, str] = {}
        self.checkpoints_checked = 0
        for cp in checkpoints:
            if not checkpoint_valid(key, cp):
                self._fail(Break(int(cp.get("seq", 0) or 0), "checkpoint seal (HMAC) is invalid"))
            elif int(cp["seq"]) > start_seq:
                self.checkpoints[int(cp["seq"])] = str(cp["hash"])

    def _fail(self, broken: Break) -> None:
        if self.broken is None or broken.seq < self.broken.seq:
            self.broken = broken

    def check(self, record: Mapping[str, Any]) -> bool:
        """Check the next record; False once the chain is broken (stop walking)."""
        if self.broken is not None and self.broken.seq <= self.last_seq + 1:
            return False
        problem = self._problem(record)
        seq = record.get("seq")
        if problem is not None:
            self._fail(Break(seq if isinstance(seq, int) else self.last_seq + 1, problem, str(record.get("_id"))))
            return False
        self.checked += 1
        self.last_seq, self.last_hash = int(record["seq"]), str(record["hash"])
        return self.broken is None or self.broken.seq > self.last_seq + 1

    def _problem(self, record: Mapping[str, Any]) -> str | None:
        seq = record.get("seq")
        expected = self.last_seq + 1
        if not isinstance(seq, int) or seq < expected:
            return f"out of order: expected seq {expected}, found {seq!r}"
        if seq > expected:
            return f"records missing: expected seq {expected}, found {seq}"
        if record.get("prev_hash") != self.last_hash:
            return f"prev_hash does not match the hash of record {self.last_seq}"
        payload = self._payload_problem(record)
        if payload is not None:
            return payload
        if record_hash(record) != record.get("hash"):
            return "record content altered: hash does not match"
        sealed = self.checkpoints.get(seq)
        if sealed is not None:
            self.checkpoints_checked += 1
            if sealed != record.get("hash"):
                return f"hash differs from the checkpoint sealed at seq {seq}"
        return None

    def _payload_problem(self, record: Mapping[str, Any]) -> str | None:
        data, digests = record.get("data"), record.get("digests")
        salts, redacted = record.get("salts") or {}, record.get("redacted") or []
        if not isinstance(data, Mapping) or not isinstance(digests, Mapping):
            return "payload or digests missing"
        if set(data) != set(digests):
            return "payload fields added or removed"
        if redacted and record.get("subject") not in self.erased:
            return "redacted fields without an erasure of this customer"
        for name, value in data.items():
            if name in redacted:
                if name not in self.personal or value != self.marker or name in salts:
                    return f"field {name!r} altered under cover of redaction"
                continue
            salt = salts.get(name)
            if not isinstance(salt, str) or field_digest(salt, value) != digests[name]:
                return f"payload field {name!r} altered"
        return None

    def finish(self, head_seq: int) -> Break | None:
        """After the last record: the head and the checkpoints must not point past it."""
        if self.broken is None:
            beyond = max([head_seq, *self.checkpoints], default=0)
            if beyond > self.last_seq:
                self._fail(Break(self.last_seq + 1, f"records missing at the end: the chain was at seq {beyond}"))
        return self.broken


# --- erasure -----------------------------------------------------------------------------------

def is_personal(name: str, value: Any, personal_fields: set[str]) -> bool:
    """A top-level payload field is personal when its name is, or it holds a personal field nested."""
    if name in personal_fields:
        return True
    if isinstance(value, Mapping):
        return any(is_personal(str(k), v, personal_fields) for k, v in value.items())
    if isinstance(value, list):
        return any(is_personal("", v, personal_fields) for v in value)
    return False


@dataclass(frozen=True)
class Redaction:
    """The personal fields of one record to replace by the marker: their salts go, their digests stay."""

    fields: tuple[str, ...]
    redacted: tuple[str, ...]  # every redacted field of the record afterwards, sorted
    marker: str

    def apply(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """``record`` as it is once redacted."""
        return {**record, "data": {**record["data"], **dict.fromkeys(self.fields, self.marker)},
                "salts": {k: v for k, v in (record.get("salts") or {}).items() if k not in self.fields},
                "redacted": list(self.redacted)}


def redaction(record: Mapping[str, Any], personal_fields: Iterable[str], marker: str) -> Redaction | None:
    """What redacting ``record``'s personal fields changes, or None when nothing is left to redact."""
    personal = set(personal_fields)
    already = set(record.get("redacted") or [])
    names = [n for n, v in (record.get("data") or {}).items() if n not in already and is_personal(n, v, personal)]
    if not names:
        return None
    return Redaction(tuple(names), tuple(sorted(already | set(names))), marker)


# --- violation rules ---------------------------------------------------------------------------

def access_violation(role: str, path: str, status: int, role_paths: Mapping[str, list[str]]) -> str | None:
    """Why an access record is outside the actor's role, or None.

    A 403 is a refused attempt; an allowed request by a role the path is not meant for (a
    configuration gap somewhere upstream) is the worse case and is reported too.
    """
    if status == 403:
        return f"role {role} was refused {path} (403)"
    for prefix, roles in role_paths.items():
        if (path == prefix or path.startswith(prefix.rstrip("/") + "/")) and role not in roles and status < 400:
            return f"role {role} reached {path}, reserved for {', '.join(roles)}"
    return None


# --- the bulk-read rule and the purpose of a read ----------------------------------------------

SERVICE_ROLE = "service"
# Outcomes that show a message went to a channel with the address that was read: a sent message, or
# a failed one that names its channel (the provider refused it). A suppression or a hold sends nothing.
SENT, FAILED = "notification.sent", "notification.failed"


class ReadStatus(StrEnum):
    counted = "counted"  # counts toward the bulk rule (a staff read at once; a lapsed service read, checked)
    pending = "pending"  # a service read waiting for the send that justifies it
    lapsed = "lapsed"  # no send came in time: counts from now on; the rule is still to be checked at its time
    justified = "justified"  # a recorded send of that customer and purpose followed: never counts


# What ``distinct_customers_read`` counts (a read stored before statuses existed counts too).
NOT_COUNTED: tuple[ReadStatus, ...] = (ReadStatus.pending, ReadStatus.justified)


def awaits_send(actor_role: str, via: str) -> bool:
    """A service identity reading contact details over the internal route reads them to send a message:
    it waits for that send before it counts. Every other read (agent, supervisor, admin, export) counts
    at once, as it always did."""
    return actor_role == SERVICE_ROLE and via == "internal"


def justifying_send(event_type: str, channel: str | None) -> bool:
    return event_type == SENT or (event_type == FAILED and bool(channel))


def send_span(read_at: datetime, window: timedelta) -> tuple[datetime, datetime]:
    """When a send must happen to justify a read at ``read_at``: ``[read_at, read_at + window]``."""
    return read_at, read_at + window


def justified_span(send_at: datetime, window: timedelta) -> tuple[datetime, datetime]:
    """Which reads a send at ``send_at`` justifies: those at ``[send_at - window, send_at]``."""
    return send_at - window, send_at


def decide_by(read_at: datetime, captured_at: datetime, window: timedelta) -> datetime:
    """When a service read with no send counts: once the window after the read has passed, and never
    sooner than a window after the audit captured it, so that a send recorded in time but captured late
    (topics are not ordered with each other; the audit may be catching up) is still seen."""
    return as_utc_ms(max(read_at, captured_at) + window)


@dataclass(frozen=True)
class PiiRead:
    """One read of clear personal data, as the bulk rule keeps it."""

    event_id: str
    actor: str
    role: str
    customer_id: str
    purpose: str
    at: datetime
    subject: str
    correlationid: str | None = None
    status: ReadStatus = ReadStatus.counted
    decide_by: datetime | None = None  # a pending read counts from then on

    @classmethod
    def of(cls, event_id: str, subject: str, correlationid: str | None, *, actor: str, role: str, via: str,
           customer_id: str, purpose: str, accessed_at: datetime, captured_at: datetime,
           window: timedelta) -> PiiRead:
        at = as_utc_ms(accessed_at)
        waits = awaits_send(role, via)
        return cls(event_id, actor, role, customer_id, purpose, at, subject, correlationid,
                   ReadStatus.pending if waits else ReadStatus.counted,
                   decide_by(at, captured_at, window) if waits else None)


@dataclass(frozen=True)
class Send:
    """A message that went out (``notification.sent``, or ``.failed`` on a channel)."""

    event_id: str
    customer_id: str
    category: str
    at: datetime


def justifies(send: Send, read: PiiRead, window: timedelta) -> bool:
    """The send is the one the read was for: same customer, the read's purpose is the message's category,
    and it went out within the window after the read."""
    since, until = send_span(read.at, window)
    return send.customer_id == read.customer_id and send.category == read.purpose and since <= send.at <= until


def settle(read: PiiRead, sends: Iterable[Send], now: datetime, window: timedelta) -> ReadStatus:
    """Where a read stands, given every send recorded so far: the rule the store and handlers apply
    incrementally (whichever of the read and its send is captured first). Only a pending read moves, and
    a decision is final: a send captured after its read lapsed does not take back what was counted."""
    if read.status is not ReadStatus.pending:
        return read.status
    if any(justifies(send, read, window) for send in sends):
        return ReadStatus.justified
    if read.decide_by is not None and now >= read.decide_by:
        return ReadStatus.lapsed
    return ReadStatus.pending


# --- queries -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RecordQuery:
    """What an auditor asks for: records by customer (event subject), actor, type or trace id, with an
    event time range ``[since, until)``."""

    customer_id: str | None = None
    actor: str | None = None
    type: str | None = None
    trace_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for name, moment in (("since", self.since), ("until", self.until)):
            if moment is not None and moment.tzinfo is None:
                raise Invalid(f"{name} must carry a UTC offset (RFC 3339)")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise Invalid("since must be before until")

    def equalities(self) -> dict[str, str]:
        """The record fields that must equal a value (empty values ask for nothing)."""
        wanted = {"subject": self.customer_id, "actor": self.actor, "type": self.type,
                  "trace_id": self.trace_id.lower() if self.trace_id else None}
        return {name: value for name, value in wanted.items() if value}

"""CloudEvents 1.0 envelope in structured JSON mode (docs/events.md).

``type`` is the topic name, ``subject`` is the customer id (and the Kafka key). Extension
attributes: ``dataversion`` (payload schema version), ``correlationid``, ``causationid``.
Payload versions evolve by upcasting on read: a breaking change registers a function that turns
version N into N+1, and consumers always see the newest shape.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SPEC_VERSION = "1.0"

ModelT = TypeVar("ModelT", bound=BaseModel)


class InvalidEvent(ValueError):
    """A message that cannot be accepted: the reason goes to the dead-letter topic."""


class CloudEvent(BaseModel):
    # Unknown extension attributes are kept, never rejected: consumers ignore what they do not know.
    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: str = SPEC_VERSION
    id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str = Field(min_length=1)
    datacontenttype: str = "application/json"
    dataversion: int = 1
    correlationid: str | None = None
    causationid: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("specversion")
    @classmethod
    def _spec(cls, v: str) -> str:
        if v != SPEC_VERSION:
            raise ValueError(f"specversion must be {SPEC_VERSION}")
        return v

    @field_validator("time")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("time must carry a UTC offset (RFC 3339)")
        return v

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    def follow_up(
        self, type: str, data: dict[str, Any], *, source: str, subject: str | None = None, **kw: Any
    ) -> CloudEvent:
        """An event caused by this one: same correlation, causation = this event's id."""
        return CloudEvent(
            source=source,
            type=type,
            subject=subject or self.subject,
            data=data,
            correlationid=self.correlationid or self.id,
            causationid=self.id,
            **kw,
        )


def new_event(
    type: str,
    subject: str,
    data: dict[str, Any],
    *,
    source: str,
    id: str | None = None,
    time: datetime | None = None,
    dataversion: int = 1,
    correlationid: str | None = None,
    causationid: str | None = None,
) -> CloudEvent:
    kwargs: dict[str, Any] = {}
    if id is not None:
        kwargs["id"] = id
    if time is not None:
        kwargs["time"] = time
    return CloudEvent(
        source=source,
        type=type,
        subject=subject,
        data=data,
        dataversion=dataversion,
        correlationid=correlationid,
        causationid=causationid,
        **kwargs,
    )


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}
_CURRENT_VERSION: dict[str, int] = {}


def register_upcaster(event_type: str, from_version: int, fn: Upcaster) -> None:
    """Register how to turn ``data`` of ``from_version`` into ``from_version + 1``."""
    _UPCASTERS[(event_type, from_version)] = fn
    _CURRENT_VERSION[event_type] = max(_CURRENT_VERSION.get(event_type, 1), from_version + 1)


def upcast(event: CloudEvent) -> CloudEvent:
    version = event.dataversion
    target = _CURRENT_VERSION.get(event.type, version)
    if version >= target:
        return event  # current already: nothing to copy (a copy per event is a consumer's hot path)
    data = copy.deepcopy(event.data)  # upcasters may change what they are given; the event stays as read
    while version < target:
        fn = _UPCASTERS.get((event.type, version))
        if fn is None:
            raise InvalidEvent(f"no upcaster for {event.type} dataversion {version}")
        data = fn(data)
        version += 1
    if version == event.dataversion:
        return event
    return event.model_copy(update={"data": data, "dataversion": version})


def decode_event(raw: bytes | str | dict[str, Any]) -> CloudEvent:
    """Parse a structured-mode CloudEvent; raise InvalidEvent with a readable reason."""
    try:
        obj = json.loads(raw) if isinstance(raw, bytes | str) else raw
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent(f"value is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise InvalidEvent("value is not a JSON object")
    try:
        event = CloudEvent.model_validate(obj)
    except ValidationError as exc:
        raise InvalidEvent(f"not a CloudEvent: {describe_validation_error(exc)}") from exc
    return upcast(event)


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def parse_data(event: CloudEvent, model: type[ModelT]) -> ModelT:
    """Validate ``event.data`` against a contract model; InvalidEvent says which field is wrong."""
    try:
        return model.model_validate(event.data)
    except ValidationError as exc:
        raise InvalidEvent(f"{event.type} data invalid: {describe_validation_error(exc)}") from exc

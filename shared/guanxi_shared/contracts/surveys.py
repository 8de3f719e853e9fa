"""Payloads the surveys service publishes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from .inbound import Contract

SurveyKind = Literal["post_purchase", "post_resolution"]


class SurveyScheduled(Contract):
    survey_id: str
    customer_id: str
    kind: SurveyKind
    scheduled_for: datetime
    trigger_id: str  # order_id or complaint_id


class SurveyRequested(Contract):
    survey_id: str
    customer_id: str
    kind: SurveyKind
    language: str = "zh"
    link: str  # signed, single-use, expiring
    expires_at: datetime
    reminder: bool = False
    trigger_id: str | None = None
    template: str | None = None  # e.g. post_purchase@v1


class SurveyCompleted(Contract):
    survey_id: str
    customer_id: str
    kind: SurveyKind
    csat: int | None = None  # 0-100
    nps: int | None = None  # 0-10
    channel: str | None = None
    completed_at: datetime
    trigger_id: str | None = None
    member_level: str | None = None
    template: str | None = None


class SurveyLowScore(Contract):
    survey_id: str
    customer_id: str
    kind: SurveyKind
    csat: int | None = None
    nps: int | None = None
    reason: str
    at: datetime
    trigger_id: str | None = None
    channel: str | None = None


class SurveySkipped(Contract):
    customer_id: str
    kind: SurveyKind
    trigger_id: str
    reason: str
    at: datetime
    survey_id: str | None = None  # set when an already scheduled survey was cancelled

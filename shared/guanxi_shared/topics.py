"""The topic catalogue: one topic per event type (docs/events.md).

The CloudEvents ``type`` of an event equals its topic name. Every topic has a dead-letter topic
``<topic>.dlq``. Inbound topics carry the whole organisation's order and call-centre traffic, so
they get more partitions; the key is always the customer id, which keeps per-customer order.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    description: str

    @property
    def dlq(self) -> str:
        return dead_letter(self.name)


def dead_letter(name: str) -> str:
    return f"{name}.dlq"


# Inbound integration contract (public; external systems write these directly).
PURCHASE_COMPLETED = "purchase.completed"
COMPLAINT_RECEIVED = "complaint.received"
INTERACTION_LOGGED = "interaction.logged"

# Customer service.
CUSTOMER_REGISTERED = "customer.registered"
CUSTOMER_UPDATED = "customer.updated"
CUSTOMER_TIER_CHANGED = "customer.tier_changed"
CUSTOMER_CONSENT_CHANGED = "customer.consent_changed"
CUSTOMER_PII_ACCESSED = "customer.pii_accessed"
CUSTOMER_ERASED = "customer.erased"
CUSTOMER_CARE_DUE = "customer.care_due"
CUSTOMER_CHURN_RISK_FLAGGED = "customer.churn_risk_flagged"
CUSTOMER_RESPONSE_OVERDUE = "customer.response_overdue"
CUSTOMER_COMMITMENT_OVERDUE = "customer.commitment_overdue"

# Complaints service.
COMPLAINT_REGISTERED = "complaint.registered"
COMPLAINT_ACKNOWLEDGED = "complaint.acknowledged"
COMPLAINT_ASSIGNED = "complaint.assigned"
COMPLAINT_PRELIMINARY_OPINION_GIVEN = "complaint.preliminary_opinion_given"
COMPLAINT_INVESTIGATION_STARTED = "complaint.investigation_started"
COMPLAINT_RESOLVED = "complaint.resolved"
COMPLAINT_CLOSED = "complaint.closed"
COMPLAINT_REOPENED = "complaint.reopened"
COMPLAINT_DEADLINE_APPROACHING = "complaint.deadline_approaching"
COMPLAINT_DEADLINE_BREACHED = "complaint.deadline_breached"
COMPLAINT_ESCALATED = "complaint.escalated"
CRISIS_ALERT = "crisis.alert"

# Surveys service.
SURVEY_SCHEDULED = "survey.scheduled"
SURVEY_REQUESTED = "survey.requested"
SURVEY_COMPLETED = "survey.completed"
SURVEY_LOW_SCORE = "survey.low_score"
SURVEY_SKIPPED = "survey.skipped"

# Notifications service.
NOTIFICATION_REQUESTED = "notification.requested"
NOTIFICATION_SENT = "notification.sent"
NOTIFICATION_FAILED = "notification.failed"
NOTIFICATION_SUPPRESSED = "notification.suppressed"

# Gateway and audit.
ACCESS_RECORDED = "access.recorded"
AUDIT_VIOLATION = "audit.violation"

_INBOUND_PARTITIONS = 6
_DEFAULT_PARTITIONS = 3

CATALOGUE: tuple[Topic, ...] = (
    Topic(PURCHASE_COMPLETED, _INBOUND_PARTITIONS, "an order system completed a purchase"),
    Topic(COMPLAINT_RECEIVED, _INBOUND_PARTITIONS, "a complaint arrived on some channel"),
    Topic(INTERACTION_LOGGED, _INBOUND_PARTITIONS, "a contact with a customer happened"),
    Topic(CUSTOMER_REGISTERED, _DEFAULT_PARTITIONS, "a customer profile was created"),
    Topic(CUSTOMER_UPDATED, _DEFAULT_PARTITIONS, "profile fields changed (names only, never values)"),
    Topic(CUSTOMER_TIER_CHANGED, _DEFAULT_PARTITIONS, "member level or tenure changed"),
    Topic(CUSTOMER_CONSENT_CHANGED, _DEFAULT_PARTITIONS, "consent for a purpose granted or withdrawn"),
    Topic(CUSTOMER_PII_ACCESSED, _DEFAULT_PARTITIONS, "clear personal data was read"),
    Topic(CUSTOMER_ERASED, _DEFAULT_PARTITIONS, "a customer's personal data was erased"),
    Topic(CUSTOMER_CARE_DUE, _DEFAULT_PARTITIONS, "a care occasion (birthday, revisit, update) is due"),
    Topic(CUSTOMER_CHURN_RISK_FLAGGED, _DEFAULT_PARTITIONS, "no purchase or contact for too long"),
    Topic(CUSTOMER_RESPONSE_OVERDUE, _DEFAULT_PARTITIONS, "an inbound contact was not answered in time"),
    Topic(CUSTOMER_COMMITMENT_OVERDUE, _DEFAULT_PARTITIONS, "a visit commitment passed its due date"),
    Topic(COMPLAINT_REGISTERED, _DEFAULT_PARTITIONS, "a complaint case was opened"),
    Topic(COMPLAINT_ACKNOWLEDGED, _DEFAULT_PARTITIONS, "receipt of a complaint was acknowledged"),
    Topic(COMPLAINT_ASSIGNED, _DEFAULT_PARTITIONS, "a complaint got a named owner"),
    Topic(COMPLAINT_PRELIMINARY_OPINION_GIVEN, _DEFAULT_PARTITIONS, "preliminary opinion given"),
    Topic(COMPLAINT_INVESTIGATION_STARTED, _DEFAULT_PARTITIONS, "an investigation started"),
    Topic(COMPLAINT_RESOLVED, _DEFAULT_PARTITIONS, "formal answer given"),
    Topic(COMPLAINT_CLOSED, _DEFAULT_PARTITIONS, "complaint closed"),
    Topic(COMPLAINT_REOPENED, _DEFAULT_PARTITIONS, "complaint reopened on request"),
    Topic(COMPLAINT_DEADLINE_APPROACHING, _DEFAULT_PARTITIONS, "a complaint deadline is near"),
    Topic(COMPLAINT_DEADLINE_BREACHED, _DEFAULT_PARTITIONS, "a complaint deadline passed"),
    Topic(COMPLAINT_ESCALATED, _DEFAULT_PARTITIONS, "a complaint was escalated to a supervisor"),
    Topic(CRISIS_ALERT, _DEFAULT_PARTITIONS, "complaint spike or run of low scores"),
    Topic(SURVEY_SCHEDULED, _DEFAULT_PARTITIONS, "a survey was scheduled"),
    Topic(SURVEY_REQUESTED, _DEFAULT_PARTITIONS, "a survey is due to be sent to the customer"),
    Topic(SURVEY_COMPLETED, _DEFAULT_PARTITIONS, "a customer answered a survey"),
    Topic(SURVEY_LOW_SCORE, _DEFAULT_PARTITIONS, "a survey answer needs follow-up"),
    Topic(SURVEY_SKIPPED, _DEFAULT_PARTITIONS, "a survey was not scheduled, with the reason"),
    Topic(NOTIFICATION_REQUESTED, _DEFAULT_PARTITIONS, "another producer asks for a message"),
    Topic(NOTIFICATION_SENT, _DEFAULT_PARTITIONS, "a message was handed to its channel"),
    Topic(NOTIFICATION_FAILED, _DEFAULT_PARTITIONS, "a message failed permanently"),
    Topic(NOTIFICATION_SUPPRESSED, _DEFAULT_PARTITIONS, "a message was suppressed, with the reason"),
    Topic(ACCESS_RECORDED, _DEFAULT_PARTITIONS, "the gateway handled a request"),
    Topic(AUDIT_VIOLATION, _DEFAULT_PARTITIONS, "a confidentiality rule was violated"),
)

ALL_TOPICS: tuple[str, ...] = tuple(t.name for t in CATALOGUE)

# Topics whose events for one customer must be handled by one consumer-group member, in turn. Keyed by
# the customer id, a customer lands on partition hash % n of each; with equal n and the range assignor
# (``guanxi_shared.messaging``), partition k of every topic goes to the same member. A change to the
# partition count of one topic of a group must change all of them.
SAME_PARTITIONING: tuple[tuple[str, ...], ...] = (
    # The customer service folds a complaint's steps into one summary per complaint, by the step's own time.
    (COMPLAINT_REGISTERED, COMPLAINT_ACKNOWLEDGED, COMPLAINT_RESOLVED, COMPLAINT_CLOSED, COMPLAINT_REOPENED),
    # The surveys service is the only writer of a customer's member level and the time it was set.
    (CUSTOMER_REGISTERED, CUSTOMER_TIER_CHANGED),
)
BY_NAME: dict[str, Topic] = {t.name: t for t in CATALOGUE}

"""The words the console shows for the platform's codes (statuses, channels, roles…): English msgids,
translated by the pages in the viewer's language. ``N_`` only marks a msgid for the catalogue."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def N_(msgid: str) -> str:
    """Marks an English msgid for the catalogue (pybabel extract -k N_); the page translates it when shown."""
    return msgid


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time from the API (with offset), or None."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else None
    if not value or not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


DEADLINES = ("acknowledge", "preliminary_opinion", "investigation", "formal_answer")
STATUSES = ("received", "acknowledged", "preliminary_opinion", "investigating", "resolved", "closed", "reopened")
OPEN_STATUSES = frozenset({"received", "acknowledged", "preliminary_opinion", "investigating", "reopened"})
SEVERITIES = ("low", "normal", "high", "urgent")
# What a complaint can come in through (the gateway's ComplaintChannel); "survey" only from a low score.
CHANNELS = ("phone", "email", "chat", "social", "web", "sms", "app", "visit", "survey")
INTAKE_CHANNELS = ("phone", "email", "chat", "social", "web", "sms", "app", "visit")
# What a contact record can come in through (the customer service's NewInteraction).
CONTACT_CHANNELS = ("phone", "email", "chat", "social", "sms", "app", "visit", "web", "counter")
# Complaint categories offered by the forms (the API takes any short text; others show as written).
CATEGORIES = ("billing", "product_quality", "delivery", "service_attitude", "network", "installation", "other")

STATUS_LABELS = {"received": N_("Received"), "acknowledged": N_("Acknowledged"),
                 "preliminary_opinion": N_("Preliminary opinion given"), "investigating": N_("Investigating"),
                 "resolved": N_("Resolved"), "closed": N_("Closed"), "reopened": N_("Reopened")}
DEADLINE_LABELS = {"acknowledge": N_("Acknowledge receipt"), "preliminary_opinion": N_("Preliminary opinion"),
                   "investigation": N_("Investigation"), "formal_answer": N_("Formal answer")}
STATE_LABELS = {"pending": N_("Running"), "breached": N_("Breached"), "met": N_("Met"), "met_late": N_("Met late"),
                "not_started": N_("Not started")}
SEVERITY_LABELS = {"low": N_("Low"), "normal": N_("Normal"), "high": N_("High"), "urgent": N_("Urgent")}
CHANNEL_LABELS = {"phone": N_("Phone"), "email": N_("Email"), "chat": N_("Online chat"), "social": N_("Social media"),
                  "web": N_("Web"), "sms": N_("SMS"), "app": N_("App"), "visit": N_("Visit"), "survey": N_("Survey"),
                  "counter": N_("Counter"), "wechat": N_("WeChat"), "in_app": N_("In-app message")}
CATEGORY_LABELS = {"billing": N_("Billing"), "product_quality": N_("Product quality"), "delivery": N_("Delivery"),
                   "service_attitude": N_("Service attitude"), "network": N_("Network or signal"),
                   "installation": N_("Installation"), "other": N_("Other"),
                   "low_satisfaction": N_("Low satisfaction (survey)")}
STEP_LABELS = {"received": N_("Received"), "acknowledged": N_("Acknowledged"), "assigned": N_("Assigned"),
               "preliminary_opinion": N_("Preliminary opinion given"), "investigation_started": N_("Investigation started"),
               "investigation": N_("Investigation started"),
               "resolved": N_("Resolved (formal answer)"), "closed": N_("Closed"), "reopened": N_("Reopened"),
               "waiting_on_customer": N_("Waiting for the customer"), "customer_responded": N_("The customer responded")}
ROLE_LABELS = {"agent": N_("Agent"), "supervisor": N_("Supervisor"), "admin": N_("Administrator"),
               "auditor": N_("Auditor")}
PURPOSE_LABELS = {"service": N_("Service messages"), "survey": N_("Satisfaction surveys"), "care": N_("Care and greetings"),
                  "marketing": N_("Marketing")}
PURPOSES = ("service", "survey", "care", "marketing")
OPT_OUT_CHANNELS = ("email", "sms", "phone", "app", "wechat")
LEVEL_LABELS = {"standard": N_("Standard"), "silver": N_("Silver"), "gold": N_("Gold"), "platinum": N_("Platinum")}
TENURE_LABELS = {"new": N_("New"), "returning": N_("Returning"), "loyal": N_("Loyal")}
DIRECTION_LABELS = {"inbound": N_("Inbound"), "outbound": N_("Outbound")}
RESPONSE_STATE_LABELS = {"open": N_("Awaiting an answer"), "answered": N_("Answered"), "overdue": N_("Overdue"),
                         "on_time": N_("Answered in time"), "late": N_("Answered late")}
SURVEY_STATUS_LABELS = {"scheduled": N_("Scheduled"), "sent": N_("Sent"), "completed": N_("Answered"),
                        "expired": N_("Expired"), "cancelled": N_("Cancelled")}
SURVEY_KIND_LABELS = {"post_purchase": N_("After a purchase"), "post_resolution": N_("After a complaint")}
MESSAGE_STATUS_LABELS = {"sent": N_("Sent"), "failed": N_("Failed"), "suppressed": N_("Not sent (suppressed)"),
                         "held": N_("Held (quiet hours)"), "pending": N_("Waiting to be sent"),
                         "retrying": N_("Retrying")}
CARE_LABELS = {"birthday": N_("Birthday greeting"), "revisit": N_("Regular revisit"),
               "profile_update": N_("Profile update reminder"), "churn_risk": N_("Churn watch"),
               "commitment": N_("Visit commitment")}
CARE_STATE_LABELS = {"pending": N_("Planned"), "fired": N_("Done"), "cancelled": N_("Cancelled")}
VISIT_STATUS_LABELS = {"planned": N_("Planned"), "reported": N_("Reported"), "done": N_("Done")}
GENDER_LABELS = {"female": N_("Female"), "male": N_("Male"), "other": N_("Other"), "unspecified": N_("Not stated")}
LANGUAGE_LABELS = {"zh": N_("Chinese"), "en": N_("English")}
KIND_LABELS = {"person": N_("Person"), "organisation": N_("Organisation")}
INDUSTRY_LABELS = {"manufacturing": N_("Manufacturing"), "services": N_("Services"), "government": N_("Government"),
                   "retail": N_("Retail"), "finance": N_("Finance"), "technology": N_("Technology"),
                   "education": N_("Education"), "healthcare": N_("Healthcare"), "other": N_("Other")}
SIZE_LABELS = {"large": N_("Large"), "medium": N_("Medium"), "small": N_("Small"),
               "individual_business": N_("Individual business"), "person": N_("Private person")}
FIELD_LABELS = {"name": N_("Name"), "phone": N_("Mobile phone"), "email": N_("Email"), "birthday": N_("Birthday"),
                "address": N_("Address"), "id_number": N_("ID number"), "gender": N_("Gender"),
                "occupation": N_("Occupation"), "company": N_("Company"), "industry": N_("Industry"), "size": N_("Size"),
                "language": N_("Language"), "kind": N_("Kind of customer"), "timezone": N_("Time zone"),
                "tags": N_("Tags"), "consents": N_("Consents")}


def label(table: dict[str, str], code: Any) -> str:
    """The msgid for ``code`` in ``table``, or the code itself (shown as the API gave it)."""
    if code is None or code == "":
        return "—"
    return table.get(str(code), str(code))

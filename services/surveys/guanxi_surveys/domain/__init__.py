"""The rules of the surveys service: templates and answers (``templates``), when to send (``timing``),
who may be surveyed and what a trigger decides (``surveys``), scores and report figures (``scores``),
answer links (``links``) and the events all of it causes (``events``).

Pure: no I/O. The names used across the service are importable from here.
"""

from .links import LinkClaims, LinkExpired, LinkInvalid, link_url, read_link, sign_link
from .scores import CSAT_BUCKETS, Figures, csat_bucket, low_score_reasons, nps_category, period_keys
from .surveys import (
    KINDS,
    PENDING_STATES,
    CustomerView,
    Kind,
    Scheduled,
    SurveyAnswered,
    SurveyClosed,
    SurveyNotFound,
    TierChange,
    Trigger,
    check_answerable,
    derived_event_id,
    refusal_at_send,
    refusal_at_trigger,
    schedule,
    survey_id,
)
from .templates import (
    LANGUAGES,
    TEMPLATES,
    AnswerError,
    Answers,
    Question,
    SurveyTemplate,
    all_free_text_questions,
    all_templates,
    current_template,
    free_text_questions,
    template_of,
    validate_answers,
)
from .timing import QuietHours, SendPolicy, parse_hhmm, send_window, working_day_checker, zone

__all__ = [
    "CSAT_BUCKETS", "KINDS", "LANGUAGES", "PENDING_STATES", "TEMPLATES", "AnswerError", "Answers", "CustomerView", "Figures",
    "Kind", "LinkClaims", "LinkExpired", "LinkInvalid", "Question", "QuietHours", "Scheduled", "SendPolicy", "SurveyAnswered",
    "SurveyClosed", "SurveyNotFound", "SurveyTemplate", "TierChange", "Trigger", "all_free_text_questions", "all_templates",
    "check_answerable", "csat_bucket", "current_template", "derived_event_id", "free_text_questions", "link_url",
    "low_score_reasons", "nps_category", "parse_hhmm", "period_keys", "read_link", "refusal_at_send", "refusal_at_trigger",
    "schedule", "send_window", "sign_link", "survey_id", "template_of", "validate_answers", "working_day_checker", "zone",
]

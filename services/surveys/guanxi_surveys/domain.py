"""Survey rules: templates, when to send, who may be surveyed, answer validation, scoring, report math.

Pure: no I/O. The public-holiday calendar comes from the ``holidays`` package, which is data, not I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

Kind = Literal["post_purchase", "post_resolution"]
KINDS: tuple[str, ...] = ("post_purchase", "post_resolution")
LANGUAGES: tuple[str, ...] = ("zh", "en")

# Deterministic ids: a redelivered trigger maps to the same survey, skip record and events.
NAMESPACE = uuid.UUID("5d0c7f4e-8f8a-4a77-9d2b-6c1f3f1e5a01")


def survey_id(kind: str, trigger_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{trigger_id}"))


def derived_event_id(cause: str, what: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{cause}:{what}"))


# ---------------------------------------------------------------- templates

QuestionType = Literal["csat", "nps", "choice", "text"]


@dataclass(frozen=True)
class Question:
    id: str
    type: QuestionType
    text: Mapping[str, str]  # language → wording
    required: bool = False
    options: tuple[tuple[str, Mapping[str, str]], ...] = ()  # (value, language → label)
    max_length: int = 2000

    def render(self, language: str) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": self.type, "text": _pick(self.text, language), "required": self.required}
        if self.type == "csat":
            out.update(min=0, max=100)
        elif self.type == "nps":
            out.update(min=0, max=10)
        elif self.type == "choice":
            out["options"] = [{"value": v, "label": _pick(label, language)} for v, label in self.options]
        else:
            out["max_length"] = self.max_length
        return out


@dataclass(frozen=True)
class SurveyTemplate:
    kind: str
    version: int
    title: Mapping[str, str]
    questions: tuple[Question, ...]

    @property
    def key(self) -> str:
        return f"{self.kind}@v{self.version}"

    def render(self, language: str) -> dict[str, Any]:
        return {"template": self.key, "language": language if language in LANGUAGES else "zh",
                "title": _pick(self.title, language), "questions": [q.render(language) for q in self.questions]}


def _pick(text: Mapping[str, str], language: str) -> str:
    return text.get(language) or text["zh"]


_SATISFACTION = Question("satisfaction", "csat", {"zh": "您对本次体验的满意度（0–100分）？",
                                                  "en": "How satisfied are you with this experience (0–100)?"}, required=True)
_RECOMMEND = Question("recommend", "nps", {"zh": "您有多大可能向朋友或同事推荐我们（0–10分）？",
                                           "en": "How likely are you to recommend us to a friend or colleague (0–10)?"},
                      required=True)
_COMMENT = Question("comment", "text", {"zh": "还有什么想告诉我们的吗？", "en": "Anything else you would like to tell us?"},
                    max_length=2000)

TEMPLATES: dict[str, dict[int, SurveyTemplate]] = {
    "post_purchase": {
        1: SurveyTemplate("post_purchase", 1, {"zh": "购物满意度调查", "en": "Your purchase: a short survey"}, (
            _SATISFACTION,
            _RECOMMEND,
            Question("liked_most", "choice", {"zh": "您最满意的是哪一方面？", "en": "What did you like most?"}, options=(
                ("product", {"zh": "产品", "en": "The product"}),
                ("delivery", {"zh": "配送", "en": "Delivery"}),
                ("service", {"zh": "服务", "en": "Service"}),
                ("price", {"zh": "价格", "en": "Price"}),
            )),
            _COMMENT,
        )),
    },
    "post_resolution": {
        1: SurveyTemplate("post_resolution", 1, {"zh": "投诉处理满意度调查", "en": "How did we handle your complaint?"}, (
            _SATISFACTION,
            _RECOMMEND,
            Question("resolved", "choice", {"zh": "您的问题是否已解决？", "en": "Was your problem solved?"}, options=(
                ("yes", {"zh": "已解决", "en": "Yes"}),
                ("partly", {"zh": "部分解决", "en": "Partly"}),
                ("no", {"zh": "未解决", "en": "No"}),
            )),
            _COMMENT,
        )),
    },
}


def current_template(kind: str) -> SurveyTemplate:
    versions = TEMPLATES[kind]
    return versions[max(versions)]


def template_of(kind: str, version: int) -> SurveyTemplate:
    """The version the survey was sent with: answers are always checked against what the customer saw."""
    return TEMPLATES[kind][version]


class AnswerError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Answers:
    values: dict[str, Any]
    csat: int | None
    nps: int | None


def validate_answers(template: SurveyTemplate, answers: Mapping[str, Any]) -> Answers:
    problems: list[str] = []
    by_id = {q.id: q for q in template.questions}
    for name in answers:
        if name not in by_id:
            problems.append(f"{name}: not a question of {template.key}")
    values: dict[str, Any] = {}
    for q in template.questions:
        value = answers.get(q.id)
        if value is None:
            if q.required:
                problems.append(f"{q.id}: an answer is required")
            continue
        if q.type in ("csat", "nps"):
            top = 100 if q.type == "csat" else 10
            # bool is an int in Python; a checkbox value is not a score.
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                problems.append(f"{q.id}: must be a whole number from 0 to {top}")
                continue
        elif q.type == "choice":
            if value not in {v for v, _ in q.options}:
                problems.append(f"{q.id}: must be one of {', '.join(v for v, _ in q.options)}")
                continue
        elif not isinstance(value, str) or len(value) > q.max_length:
            problems.append(f"{q.id}: must be text of at most {q.max_length} characters")
            continue
        elif not value.strip():
            continue
        values[q.id] = value.strip() if isinstance(value, str) else value
    if problems:
        raise AnswerError(problems)
    csat = next((values[q.id] for q in template.questions if q.type == "csat" and q.id in values), None)
    nps = next((values[q.id] for q in template.questions if q.type == "nps" and q.id in values), None)
    return Answers(values, csat, nps)


def free_text_questions(template: SurveyTemplate) -> list[str]:
    """Answers that may hold anything the customer typed: removed when the customer is erased."""
    return [q.id for q in template.questions if q.type == "text"]


# ---------------------------------------------------------------- scoring

def nps_category(nps: int) -> Literal["promoter", "passive", "detractor"]:
    if nps >= 9:
        return "promoter"
    if nps >= 7:
        return "passive"
    return "detractor"


def low_score_reasons(csat: int | None, nps: int | None, threshold: int) -> list[str]:
    reasons = []
    if csat is not None and csat < threshold:
        reasons.append(f"csat_below_{threshold}")
    if nps is not None and nps_category(nps) == "detractor":
        reasons.append("nps_detractor")
    return reasons


CSAT_BUCKETS: tuple[tuple[int, int], ...] = ((0, 59), (60, 69), (70, 79), (80, 89), (90, 100))


def csat_bucket(csat: int | None) -> str:
    if csat is None:
        return "none"
    for low, high in CSAT_BUCKETS:
        if low <= csat <= high:
            return f"{low}-{high}"
    raise ValueError(f"csat out of range: {csat}")


@dataclass(frozen=True)
class Tally:
    """How many sent surveys of one group share an outcome (answered or not, CSAT, NPS).

    Reports read these counts from the store with a single ``$sum: 1`` per group and do all the
    arithmetic here: the FerretDB in use computes only the first accumulator of a ``$group``
    correctly, and has no ``$avg``/``$cond`` to rely on anyway.
    """

    completed: bool
    csat: int | None
    nps: int | None
    n: int


@dataclass(frozen=True)
class Figures:
    sent: int
    completed: int
    csat_sum: int
    csat_n: int
    nps_n: int
    promoters: int
    detractors: int

    @classmethod
    def of(cls, tallies: Iterable[Tally]) -> Figures:
        sent = completed = csat_sum = csat_n = nps_n = promoters = detractors = 0
        for t in tallies:
            sent += t.n
            if not t.completed:
                continue
            completed += t.n
            if t.csat is not None:
                csat_sum += t.csat * t.n
                csat_n += t.n
            if t.nps is not None:
                nps_n += t.n
                category = nps_category(t.nps)
                promoters += t.n if category == "promoter" else 0
                detractors += t.n if category == "detractor" else 0
        return cls(sent, completed, csat_sum, csat_n, nps_n, promoters, detractors)

    def as_report(self, target: float) -> dict[str, Any]:
        avg = round(self.csat_sum / self.csat_n, 2) if self.csat_n else None
        return {
            "sent": self.sent,
            "completed": self.completed,
            "response_rate": round(self.completed / self.sent, 4) if self.sent else None,
            "avg_csat": avg,
            "csat_target": target,
            "meets_target": None if avg is None else avg >= target,
            "nps": round(100 * (self.promoters - self.detractors) / self.nps_n, 2) if self.nps_n else None,
            "promoters": self.promoters,
            "detractors": self.detractors,
            "nps_responses": self.nps_n,
        }


def distribution(tallies: Iterable[Tally]) -> dict[str, dict[str, int]]:
    csat = {f"{low}-{high}": 0 for low, high in CSAT_BUCKETS}
    nps = {str(n): 0 for n in range(11)}
    for t in tallies:
        if t.completed and t.csat is not None:
            csat[csat_bucket(t.csat)] += t.n
        if t.completed and t.nps is not None:
            nps[str(t.nps)] += t.n
    return {"csat": csat, "nps": nps}


def period_keys(moment: datetime, tz: ZoneInfo) -> dict[str, str]:
    """Day, ISO week and month of ``moment`` in the business time zone, stored for ``$group``."""
    local = moment.astimezone(tz)
    year, week, _ = local.isocalendar()
    return {"day": local.strftime("%Y-%m-%d"), "week": f"{year}-W{week:02d}", "month": local.strftime("%Y-%m")}


# ---------------------------------------------------------------- who may be surveyed

@dataclass
class CustomerView:
    """What this service knows of a customer, learnt from customer events (never personal data)."""

    customer_id: str
    survey_consent: bool | None = None  # None: never told
    erased: bool = False
    language: str | None = None
    timezone: str | None = None
    member_level: str | None = None
    last_survey_at: datetime | None = None


def refusal_at_trigger(view: CustomerView | None, scheduled_for: datetime, cooldown: timedelta) -> str | None:
    """Why no survey may be scheduled, or None. Unknown consent is checked again at send time."""
    if view is None:
        return None
    if view.erased:
        return "customer_erased"
    if view.survey_consent is False:
        return "no_survey_consent"
    if view.last_survey_at is not None and abs(scheduled_for - view.last_survey_at) < cooldown:
        return "cooldown"
    return None


def refusal_at_send(view: CustomerView | None) -> str | None:
    """Our default: no survey unless survey consent is known to be granted when it goes out."""
    if view is not None and view.erased:
        return "customer_erased"
    if view is None or view.survey_consent is None:
        return "survey_consent_unknown"
    if not view.survey_consent:
        return "no_survey_consent"
    return None


# ---------------------------------------------------------------- when to send

def parse_hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    @property
    def wraps(self) -> bool:
        return self.end <= self.start

    def contains(self, t: time) -> bool:
        if self.start == self.end:
            return False
        if self.wraps:
            return t >= self.start or t < self.end
        return self.start <= t < self.end

    def first_allowed(self, day: date, tz: ZoneInfo) -> datetime:
        """The earliest non-quiet moment of ``day``."""
        at = self.end if self.wraps and self.start != self.end else time(0, 0)
        return datetime.combine(day, at, tzinfo=tz)

    def next_allowed(self, local: datetime) -> datetime:
        """``local`` itself if not quiet, else the end of its quiet period (same zone)."""
        if not self.contains(local.timetz().replace(tzinfo=None)):
            return local
        t = local.time()
        day = local.date()
        if self.wraps and t >= self.start:
            day += timedelta(days=1)
        return datetime.combine(day, self.end, tzinfo=local.tzinfo)


@lru_cache(maxsize=64)
def _calendar(country: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, years=year)


def working_day_checker(country: str) -> Callable[[date], bool]:
    """Working days of the country, including weekend make-up working days (调休)."""

    def is_working(day: date) -> bool:
        return bool(_calendar(country, day.year).is_working_day(day))

    return is_working


def zone(name: str | None, default: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


@dataclass(frozen=True)
class SendPolicy:
    quiet: QuietHours
    is_working: Callable[[date], bool] = field(repr=False)

    def allowed(self, moment: datetime, tz: ZoneInfo) -> bool:
        local = moment.astimezone(tz)
        return self.is_working(local.date()) and not self.quiet.contains(local.time())

    def next_allowed(self, moment: datetime, tz: ZoneInfo, horizon_days: int = 40) -> datetime | None:
        local = moment.astimezone(tz)
        for _ in range(horizon_days + 1):
            if not self.is_working(local.date()):
                local = self.quiet.first_allowed(local.date() + timedelta(days=1), tz)
                continue
            moved = self.quiet.next_allowed(local)
            if moved.date() != local.date():
                local = moved  # quiet into the next day: that day must be checked too
                continue
            return moved
        return None

    def choose(self, earliest: datetime, latest: datetime, tz: ZoneInfo) -> datetime:
        """First working, non-quiet moment in [earliest, latest]; else the first non-quiet one; else earliest."""
        found = self.next_allowed(earliest, tz)
        if found is not None and found <= latest:
            return found
        not_quiet = self.quiet.next_allowed(earliest.astimezone(tz))
        return not_quiet if not_quiet <= latest else earliest


def send_window(trigger_at: datetime, now: datetime, min_days: float, max_days: float) -> tuple[datetime, datetime] | None:
    """The window to send in, starting no earlier than now; None when it has already passed."""
    earliest = max(trigger_at + timedelta(days=min_days), now)
    latest = trigger_at + timedelta(days=max_days)
    if latest < earliest:
        return None
    return earliest, latest

"""Survey templates (versioned in code, zh and en) and the validation of answers against them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from guanxi_shared.errors import Invalid

LANGUAGES: tuple[str, ...] = ("zh", "en")

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


def all_templates() -> list[SurveyTemplate]:
    return [t for versions in TEMPLATES.values() for t in versions.values()]


class AnswerError(Invalid):
    """Answers that do not fit the template; ``problems`` names each one (and is shown as ``errors``)."""

    title = "Invalid answers"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems), errors=problems)
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


def all_free_text_questions() -> list[str]:
    """Free-text questions of every template version, sorted: what erasure removes from answers."""
    return sorted({q for t in all_templates() for q in free_text_questions(t)})

"""The customer's survey form, pure: checking what was submitted against the questions the API gave."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .forms import FormProblems
from .labels import N_


def survey_answers(questions: Iterable[Mapping[str, Any]], form: Mapping[str, str]) -> dict[str, Any]:
    """The answers of a submitted survey form, checked against the questions the API gave;
    ``FormProblems`` (question id → msgid) when something must be fixed."""
    answers: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for q in questions:
        qid, kind = str(q["id"]), q.get("type")
        raw = (form.get(qid) or "").strip()
        if not raw:
            if q.get("required"):
                problems[qid] = N_("Please answer this question.")
            continue
        if kind in ("csat", "nps"):
            low, high = int(q.get("min", 0)), int(q.get("max", 100 if kind == "csat" else 10))
            if not raw.isdigit() or not low <= int(raw) <= high:
                problems[qid] = N_("Choose a whole number in the range shown.")
                continue
            answers[qid] = int(raw)
        elif kind == "choice":
            if raw not in {str(o.get("value")) for o in q.get("options", [])}:
                problems[qid] = N_("Choose one of the options.")
                continue
            answers[qid] = raw
        else:
            if len(raw) > int(q.get("max_length", 2000)):
                problems[qid] = N_("This text is too long.")
                continue
            answers[qid] = raw
    if problems:
        raise FormProblems(problems)
    return answers



"""Message templates: sandboxed Jinja2 with strict undefined variables (pure, no I/O).

A template declares the variables it needs. On creation every variable the text uses must be
declared (or be one the dispatcher always supplies), and the text must render with sample values;
at preview and at sending time a missing variable is a clear error naming it, never an empty gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from guanxi_shared.errors import Invalid
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

# Supplied by the dispatcher for every message, from the customer service's contact details.
STANDARD_VARIABLES: frozenset[str] = frozenset({"name", "customer_id", "member_level"})
# Supplied when the trigger knows them (a complaint's case number, the customer's status link), else
# empty (None): a template may use them without declaring them, testing them first
# (``{% if status_link %}…{% endif %}``), and a message without them still renders.
OPTIONAL_VARIABLES: frozenset[str] = frozenset({"case_number", "status_link"})

_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True)


class TemplateInvalid(Invalid):
    """The template text cannot be accepted (syntax, undeclared variable, unsafe construct)."""

    title: ClassVar[str] = "Invalid template"


class MissingVariables(Invalid):
    """Variables the template needs were not given; the answer names them (``missing``)."""

    title: ClassVar[str] = "Missing template variables"

    def __init__(self, names: list[str]) -> None:
        super().__init__("missing template variables: " + ", ".join(names), missing=names)
        self.names = names


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


def used_variables(text: str) -> set[str]:
    try:
        return set(meta.find_undeclared_variables(_env.parse(text)))
    except TemplateSyntaxError as exc:
        raise TemplateInvalid(f"syntax error on line {exc.lineno}: {exc.message}") from exc


def validate(subject: str, body: str, required_variables: list[str]) -> None:
    """Raise TemplateInvalid unless the template is safe to store."""
    used = used_variables(subject) | used_variables(body)
    undeclared = sorted(used - set(required_variables) - STANDARD_VARIABLES - OPTIONAL_VARIABLES)
    if undeclared:
        raise TemplateInvalid("template uses undeclared variables: " + ", ".join(undeclared)
                              + " (declare them in required_variables)")
    sample = {name: f"<{name}>" for name in [*required_variables, *STANDARD_VARIABLES, *OPTIONAL_VARIABLES]}
    try:
        render(subject, body, sample, required_variables)
    except MissingVariables as exc:
        # Every used name has a sample, so this is a name built dynamically in the text.
        raise TemplateInvalid(str(exc)) from exc


def render(subject: str, body: str, variables: dict[str, Any], required_variables: list[str]) -> Rendered:
    missing = sorted(n for n in required_variables if n not in variables)
    if missing:
        raise MissingVariables(missing)
    variables = {**dict.fromkeys(OPTIONAL_VARIABLES), **variables}
    try:
        return Rendered(_env.from_string(subject).render(variables).strip(), _env.from_string(body).render(variables))
    except UndefinedError as exc:
        text = str(exc.message or exc)
        if text.endswith("is undefined") and text.count("'") == 2:
            # StrictUndefined says "'x' is undefined": report the name like a declared one.
            raise MissingVariables([text.split("'")[1]]) from exc
        # A missing attribute, or one the sandbox hides (``__class__``): the text itself is wrong.
        raise TemplateInvalid(f"template failed to render: {text}") from exc
    except TemplateSyntaxError as exc:
        raise TemplateInvalid(f"syntax error on line {exc.lineno}: {exc.message}") from exc
    except SecurityError as exc:
        raise TemplateInvalid(f"unsafe template: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise TemplateInvalid(f"template failed to render: {exc}") from exc

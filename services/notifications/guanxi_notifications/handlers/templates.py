"""Managed templates: seeded defaults, versions written by admins, previews.

Every change stores a new version (``<key>:<language>:<version>``); the next message uses the newest,
and the delivery log names the version each message was sent with.
"""

from __future__ import annotations

from typing import Any

from ..domain import Category, TemplateChanged, TemplateExists, TemplateNotFound
from ..domain.defaults import SEEDS
from ..domain.templating import STANDARD_VARIABLES, render, validate
from .deps import Deps
from .reading import document_view


def _document(key: str, language: str, version: int, category: Category, subject: str, body: str,
              required_variables: list[str], description: str | None, actor: str, deps: Deps) -> dict[str, Any]:
    return {"_id": f"{key}:{language}:{version}", "key": key, "language": language, "version": version,
            "category": category.value, "subject": subject, "body": body, "required_variables": required_variables,
            "description": description, "created_at": deps.clock.now(), "created_by": actor}


SEED_ACTOR = "seed"


async def seed_templates(deps: Deps) -> None:
    """Version 1 of every default template whose key and language do not exist yet; and a new version of a
    default whose current version is an older seed's text (e.g. before case numbers), never over an admin's."""
    for seed in SEEDS:
        if await deps.store.seed_template(_document(seed.key, seed.language, 1, seed.category, seed.subject, seed.body,
                                                    list(seed.required_variables), "seeded default", SEED_ACTOR, deps)):
            continue
        current = await deps.store.latest_template(seed.key, seed.language)
        if (current is None or current.get("created_by") != SEED_ACTOR
                or (current["subject"], current["body"]) == (seed.subject, seed.body)):
            continue  # retired, written by an admin, or up to date
        # Another instance starting at the same moment may take this version number first: then it is done.
        await deps.store.insert_template_version(_document(
            seed.key, seed.language, int(current["version"]) + 1, seed.category, seed.subject, seed.body,
            list(seed.required_variables), "seeded default (updated)", SEED_ACTOR, deps))


async def list_templates(deps: Deps) -> dict[str, Any]:
    return {"items": [document_view(d) for d in await deps.store.list_templates()], "next": None}


async def _stored(deps: Deps, key: str, language: str, version: int | None) -> dict[str, Any] | None:
    return await (deps.store.template_version(key, language, version) if version
                  else deps.store.latest_template(key, language))


async def template(deps: Deps, key: str, language: str, version: int | None = None) -> dict[str, Any]:
    """The current version of a template, or the one asked for."""
    doc = await _stored(deps, key, language, version)
    if doc is None:
        raise TemplateNotFound(f"no template {key} ({language})" + (f" version {version}" if version else ""))
    return document_view(doc)


async def template_versions(deps: Deps, key: str, language: str) -> dict[str, Any]:
    docs = await deps.store.template_versions(key, language)
    if not docs:
        raise TemplateNotFound(f"no template {key} ({language})")
    return {"items": [document_view(d) for d in docs], "next": None}


async def write_template(deps: Deps, key: str, language: str, category: Category, subject: str, body: str,
                         required_variables: list[str], description: str | None, actor: str, *,
                         first: bool) -> dict[str, Any]:
    """Store a new version: version 1 (``first``: refused while the template exists) or the next one
    (refused unless it exists). The text must be valid (``domain.templating.validate``)."""
    validate(subject, body, required_variables)
    latest = await deps.store.template_versions(key, language)
    if first and latest and not latest[-1].get("archived"):
        raise TemplateExists(f"template {key} ({language}) exists; PUT a new version instead")
    if not first and (not latest or latest[-1].get("archived")):
        raise TemplateNotFound(f"no template {key} ({language})")
    version = (latest[-1]["version"] + 1) if latest else 1
    doc = _document(key, language, version, category, subject, body, required_variables, description, actor, deps)
    if not await deps.store.insert_template_version(doc):
        raise TemplateChanged(f"template {key} ({language}) changed concurrently; retry")
    return document_view(doc)


async def retire_template(deps: Deps, key: str, language: str) -> None:
    """Retire a template: no message uses it any more; its versions stay for the log."""
    if not await deps.store.archive_template(key, language, deps.clock.now()):
        raise TemplateNotFound(f"no template {key} ({language})")


def preview_draft(subject: str, body: str, required_variables: list[str], variables: dict[str, Any]) -> dict[str, str]:
    """Render a template text that is not stored (refused as ``write_template`` would refuse it)."""
    validate(subject, body, required_variables)
    rendered = render(subject, body, variables, required_variables)
    return {"subject": rendered.subject, "body": rendered.body}


async def preview_template(deps: Deps, key: str, language: str, variables: dict[str, Any],
                           version: int | None = None) -> dict[str, Any]:
    """Render a stored template; the standard variables default to empty text."""
    doc = await _stored(deps, key, language, version)
    if doc is None:
        raise TemplateNotFound(f"no template {key} ({language})")
    standard = dict.fromkeys(sorted(STANDARD_VARIABLES), "")
    rendered = render(doc["subject"], doc["body"], {**standard, **variables}, doc.get("required_variables", []))
    return {"key": key, "language": language, "version": doc["version"], "subject": rendered.subject, "body": rendered.body}

"""One OpenAPI document for the whole platform: the gateway's own routes plus each service's public
``/api/v1`` paths, fetched from the services (and re-fetched while some are missing), with the
gateway's own answers (401/403/413/429/5xx problems) added to every operation."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

import httpx

from .domain import API

log = logging.getLogger(__name__)

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "instance": {"type": "string"}, "request_id": {"type": "string"},
    },
    "required": ["title", "status", "detail"],
    "additionalProperties": True,
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_GATEWAY_ANSWERS = {
    "401": "Missing or invalid bearer token",
    "403": "The caller's role may not use this route",
    "413": "Request body too large",
    "429": "Rate limit exceeded; see Retry-After",
    "502": "The owning service gave no valid answer",
    "503": "The owning service cannot be reached",
    "504": "The owning service did not answer in time",
}
_POST_ANSWERS = {"409": "A request with this Idempotency-Key is still in progress",
                 "422": "Invalid request, or an Idempotency-Key reused with a different request"}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/components/schemas/"):
                name = v.rsplit("/", 1)[-1]
                out[k] = f"#/components/schemas/{renames.get(name, name)}"
            else:
                out[k] = _rewrite_refs(v, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, renames) for v in node]
    return node


def merge(gateway_doc: dict[str, Any], services: Mapping[str, dict[str, Any]],
          public_prefixes: tuple[str, ...]) -> dict[str, Any]:
    doc = copy.deepcopy(gateway_doc)
    paths: dict[str, Any] = doc.setdefault("paths", {})
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    tags = {t["name"]: t for t in doc.get("tags", [])}
    for service, sdoc in sorted(services.items()):
        their = sdoc.get("components", {}).get("schemas", {})
        renames: dict[str, str] = {}
        for name, schema in their.items():
            # Same name, same schema: share it; same name, different schema: keep both, apart.
            if name in schemas and schemas[name] != schema:
                renames[name] = f"{service}__{name}"
        for name, schema in their.items():
            schemas[renames.get(name, name)] = _rewrite_refs(schema, renames)
        for path, item in sdoc.get("paths", {}).items():
            if not path.startswith(API + "/"):
                continue  # /internal, health probes and the like are not public
            item = _rewrite_refs(item, renames)
            merged = paths.setdefault(path, {})
            for method, op in item.items():
                if method in merged:
                    continue  # the gateway's own operation (intake) wins
                if method in _METHODS:
                    op.setdefault("tags", [service])
                    for t in op["tags"]:
                        tags.setdefault(t, {"name": t, "description": f"served by the {service} service"})
                merged[method] = op
    schemas.setdefault("Problem", PROBLEM_SCHEMA)
    doc.setdefault("components", {}).setdefault("securitySchemes", {})["bearerAuth"] = {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "OAuth2 bearer token; locally `make token ROLE=agent SUBJECT=alice` prints one"}
    for path, item in paths.items():
        for method, op in item.items():
            if method not in _METHODS:
                continue
            public = path.startswith(public_prefixes) or not path.startswith(API + "/")
            if not public:
                op["security"] = [{"bearerAuth": []}]
            _add_gateway_answers(op, method, public)
    if tags:
        doc["tags"] = list(tags.values())
    return doc


def _add_gateway_answers(op: dict[str, Any], method: str, public: bool) -> None:
    responses = op.setdefault("responses", {})
    answers = dict(_GATEWAY_ANSWERS)
    if public:
        answers.pop("401")
        answers.pop("403")
    if method == "post":
        answers.update(_POST_ANSWERS)
        params = op.setdefault("parameters", [])
        if not any(p.get("name", "").lower() == "idempotency-key" for p in params if isinstance(p, dict)):
            params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                           "description": "a retry with the same key returns the first answer; one effect",
                           "schema": {"type": "string", "maxLength": 200}})
    for code, description in answers.items():
        if code in responses:
            continue
        responses[code] = {"description": description, "content": {"application/problem+json": {"schema": _PROBLEM_REF}}}
    for code, response in responses.items():
        # Every error is problem+json (FastAPI's HTTPValidationError included, via the problem
        # handlers): document that media type wherever only JSON is declared.
        content = response.get("content") if isinstance(response, dict) else None
        if code.startswith(("4", "5")) and isinstance(content, dict) and "application/problem+json" not in content:
            content["application/problem+json"] = {"schema": _PROBLEM_REF}


class OpenApiSources:
    """The services' documents, fetched once each; missing ones are retried on the next request."""

    def __init__(self, client: httpx.AsyncClient, base_urls: Mapping[str, str]) -> None:
        self._client = client
        self._base_urls = dict(base_urls)
        self.documents: dict[str, dict[str, Any]] = {}

    @property
    def missing(self) -> list[str]:
        return [s for s in self._base_urls if s not in self.documents]

    async def refresh(self) -> bool:
        """Fetch what is missing; True when something new arrived."""
        changed = False
        for service in self.missing:
            try:
                response = await self._client.get(self._base_urls[service] + "/openapi.json", timeout=3.0)
                response.raise_for_status()
                self.documents[service] = response.json()
                changed = True
            except (httpx.HTTPError, ValueError) as exc:
                log.info("OpenAPI of %s not available yet: %s", service, exc)
        return changed

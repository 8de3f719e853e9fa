"""HTTP errors are problem+json; input that cannot be stored is a 422, never a 500."""

from __future__ import annotations

import bson
import httpx
from fastapi import FastAPI
from guanxi_shared.problems import PROBLEM_JSON, Problem, install_problem_handlers
from pydantic import BaseModel


class Note(BaseModel):
    text: str


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/notes/{key}")
    async def store(key: str, note: Note) -> dict[str, str]:
        bson.encode({key: note.text})  # what the driver does before sending
        return {"ok": "yes"}

    @app.get("/refused")
    async def refused() -> None:
        raise Problem(409, "Conflict", "the complaint is already closed")

    return app


async def call(method: str, path: str, **kw: object) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app()), base_url="http://t") as client:
        return await client.request(method, path, **kw)  # type: ignore[arg-type]


async def test_unpaired_surrogate_in_a_body_is_a_422() -> None:
    response = await call("POST", "/notes/a", content=b'{"text": "\\ud800"}', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert "cannot be stored" in response.json()["detail"]


async def test_a_key_that_cannot_be_stored_is_a_422() -> None:
    response = await call("POST", "/notes/%00bad", json={"text": "x"})
    assert response.status_code == 422 and response.json()["status"] == 422


async def test_validation_and_domain_errors_are_problems() -> None:
    invalid = await call("POST", "/notes/a", json={"text": 1})
    assert invalid.status_code == 422 and "text" in invalid.json()["detail"]
    refused = await call("GET", "/refused")
    assert refused.status_code == 409 and refused.json() == {
        "type": "about:blank", "title": "Conflict", "status": 409,
        "detail": "the complaint is already closed", "instance": "/refused"}
    missing = await call("GET", "/nowhere")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(PROBLEM_JSON)

"""The search page: the results of the header's box, linking to the customer's 360 or the case."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .. import handlers
from .common import DepsDep, PagesDep, signed_in

router = APIRouter()


@router.get("/search")
async def search(request: Request, deps: DepsDep, pages: PagesDep, q: str | None = None) -> Response:
    session = await signed_in(request, deps)
    results = await handlers.search(deps, session, q)
    return pages.render(request, pages.viewer(request, session), "search.html", results=results, q=results.query.text)

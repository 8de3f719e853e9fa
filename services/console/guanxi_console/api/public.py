"""The customer's own pages, without an account (the link is the credential), mobile first: the survey
behind its signed link and the status of their complaint behind the emailed link."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from .. import handlers
from ..domain import FormProblems
from ..gateway import GatewayError, GatewayUnavailable
from ..web import CSRF_FIELD, Pages, Viewer
from .common import DepsDep, PagesDep, csrf_refused, form_of

router = APIRouter()
LOCALE_OF = {"zh": "zh-CN", "zh-CN": "zh-CN", "en": "en"}


def _customer_viewer(request: Request, pages: Pages, language: Any) -> Viewer:
    return pages.viewer(request, None, locale=LOCALE_OF.get(str(language)) if language else None)


def _survey_gone(request: Request, pages: Pages, status: int) -> Response:
    viewer = pages.viewer(request, None)
    t = pages.gettext(viewer)
    messages = {
        409: (t("Already answered"), t("This survey has already been answered. Thank you for your time.")),
        410: (t("This link has expired"), t("This survey is closed: its link has expired. Thank you all the same.")),
        404: (t("Link not recognised"), t("We could not find this survey. Please check that the whole link was copied.")),
    }
    title, message = messages.get(status, (t("Survey"), t("This survey cannot be answered right now. Please try again "
                                                          "later.")))
    return pages.render(request, viewer, "public_message.html", status=status if status in messages else 503,
                        title=title, message=message)


@router.get("/s/{link_token}")
async def survey_page(link_token: str, request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    try:
        survey = await handlers.survey_form(deps, link_token)
    except GatewayError as exc:
        return _survey_gone(request, pages, exc.status if exc.status in (404, 409, 410) else 404)
    except GatewayUnavailable:
        return _survey_gone(request, pages, 503)
    viewer = _customer_viewer(request, pages, survey.get("language"))
    return pages.render(request, viewer, "survey.html", survey=survey, problems={}, values={}, link_token=link_token)


@router.get("/api/v1/surveys/answer/{link_token}", include_in_schema=False)
async def survey_link(link_token: str) -> Response:
    """A survey link in the API's form (``{base}/api/v1/surveys/answer/{token}``, what the surveys service
    mails when its public base URL is the console): the customer's page for it."""
    return RedirectResponse(f"/s/{link_token}", status_code=303)


@router.post("/s/{link_token}")
async def survey_submit(link_token: str, request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    form = await form_of(request)
    if not pages.csrf_ok(request, None, form.get(CSRF_FIELD)):
        return csrf_refused(pages, request, pages.viewer(request, None))
    try:
        survey, _ = await handlers.answer_survey(deps, link_token, form)
    except FormProblems as exc:
        survey = await handlers.survey_form(deps, link_token)
        viewer = _customer_viewer(request, pages, survey.get("language"))
        t = pages.gettext(viewer)
        return pages.render(request, viewer, "survey.html", status=422, survey=survey, link_token=link_token,
                            problems={k: t(v) for k, v in exc.problems.items()}, values=form)
    except GatewayError as exc:
        if exc.status == 422:
            survey = await handlers.survey_form(deps, link_token)
            viewer = _customer_viewer(request, pages, survey.get("language"))
            t = pages.gettext(viewer)
            return pages.render(request, viewer, "survey.html", status=422, survey=survey, link_token=link_token,
                                problems={"": t("Some answers were not accepted. Please check them.")}, values=form)
        return _survey_gone(request, pages, exc.status)
    except GatewayUnavailable:
        return _survey_gone(request, pages, 503)
    viewer = _customer_viewer(request, pages, survey.get("language"))
    t = pages.gettext(viewer)
    return pages.render(request, viewer, "public_message.html", title=t("Thank you"),
                        message=t("Your answers have been received. Thank you for helping us improve."))


@router.get("/c/{link_token}")
async def complaint_status(link_token: str, request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    """The customer's complaint: where it stands, the steps so far, the dates we committed to."""
    try:
        shown = await handlers.complaint_status(deps, link_token)
    except GatewayError as exc:
        viewer = pages.viewer(request, None)
        t = pages.gettext(viewer)
        if exc.status == 410:
            return pages.render(request, viewer, "public_message.html", status=410, title=t("This link has expired"),
                                message=t("This link to your complaint has expired. Please contact us if you need "
                                          "to know where it stands."))
        return pages.render(request, viewer, "public_message.html", status=404, title=t("Link not recognised"),
                            message=t("We could not find this complaint. Please check that the whole link was "
                                      "copied."))
    except GatewayUnavailable:
        viewer = pages.viewer(request, None)
        t = pages.gettext(viewer)
        return pages.render(request, viewer, "public_message.html", status=503, title=t("Please try again later"),
                            message=t("The status of your complaint cannot be shown right now. Please try again "
                                      "later."))
    viewer = _customer_viewer(request, pages, shown.language)
    return pages.render(request, viewer, "complaint_status.html", shown=shown)

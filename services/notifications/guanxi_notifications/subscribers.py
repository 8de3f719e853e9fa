"""Thin: each inbound event type → validate its payload → one use case in ``handlers``.

Payloads that do not match their contract raise ``InvalidEvent`` (dead-lettered by EventConsumer);
events that ask for nothing the customer should hear (a staff-only care occasion) are a no-op.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from guanxi_shared import topics as t
from guanxi_shared.contracts.complaints import ComplaintStep
from guanxi_shared.contracts.customer import CustomerCareDue, CustomerConsentChanged, CustomerErased, CustomerRegistered
from guanxi_shared.contracts.notifications import NotificationRequested
from guanxi_shared.contracts.surveys import SurveyRequested
from guanxi_shared.events import CloudEvent, InvalidEvent, parse_data

from . import domain, handlers
from .domain import Category, Channel, NotificationSpec

Handler = Callable[[CloudEvent], Awaitable[None]]


def event_handlers(deps: handlers.Deps) -> dict[str, Handler]:
    async def on_complaint_step(event: CloudEvent) -> None:
        step = parse_data(event, ComplaintStep)
        spec = NotificationSpec(step.customer_id, domain.COMPLAINT_TEMPLATES[event.type], Category.service,
                                domain.complaint_variables(event.data), event.id, event.type)
        await handlers.request_notification(deps, spec, event.correlationid)

    async def on_survey_requested(event: CloudEvent) -> None:
        survey = parse_data(event, SurveyRequested)
        variables = {"survey_id": survey.survey_id, "link": survey.link, "kind": survey.kind,
                     "expires_at": domain.stringify(survey.expires_at), "reminder": survey.reminder}
        spec = NotificationSpec(survey.customer_id, "survey_invitation", Category.survey, variables, event.id, event.type,
                                language=survey.language)
        await handlers.request_notification(deps, spec, event.correlationid)

    async def on_care_due(event: CloudEvent) -> None:
        care = parse_data(event, CustomerCareDue)
        mapped = domain.CARE_TEMPLATES.get(care.occasion)
        if mapped is None:
            return  # a task for staff (e.g. a visit commitment), nothing to tell the customer
        template, category = mapped
        variables = {"occasion": care.occasion, "occasion_id": care.occasion_id, **care.details}
        spec = NotificationSpec(care.customer_id, template, category, variables, event.id, event.type)
        await handlers.request_notification(deps, spec, event.correlationid)

    async def on_requested(event: CloudEvent) -> None:
        request = parse_data(event, NotificationRequested)
        try:
            channel = Channel(request.channel) if request.channel else None
        except ValueError as exc:
            raise InvalidEvent(f"unknown channel {request.channel!r}; use one of "
                               + ", ".join(c.value for c in Channel)) from exc
        spec = NotificationSpec(request.customer_id, request.template, Category(request.category), request.variables,
                                event.id, event.type, channel=channel, language=request.language)
        await handlers.request_notification(deps, spec, event.correlationid)

    async def on_registered(event: CloudEvent) -> None:
        reg = parse_data(event, CustomerRegistered)
        await handlers.learn_registration(deps, reg.customer_id, reg.consents, reg.language, reg.timezone,
                                          reg.member_level, reg.registered_at)

    async def on_consent_changed(event: CloudEvent) -> None:
        change = parse_data(event, CustomerConsentChanged)
        await handlers.learn_consent(deps, change.customer_id, change.consents, change.channels_opted_out, change.changed_at)

    async def on_erased(event: CloudEvent) -> None:
        erased = parse_data(event, CustomerErased)
        await handlers.erase_customer(deps, erased.customer_id)

    routes: dict[str, Handler] = {name: on_complaint_step for name in domain.COMPLAINT_TEMPLATES}
    routes.update({
        t.SURVEY_REQUESTED: on_survey_requested,
        t.CUSTOMER_CARE_DUE: on_care_due,
        t.NOTIFICATION_REQUESTED: on_requested,
        t.CUSTOMER_REGISTERED: on_registered,
        t.CUSTOMER_CONSENT_CHANGED: on_consent_changed,
        t.CUSTOMER_ERASED: on_erased,
    })
    return routes

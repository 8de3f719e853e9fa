"""The console's use cases, plain async functions over ``Deps``, one module per screen: ``signin``
(sessions, language), ``queue`` (the lists, saved views), ``complaints`` (a case, its commands, the
customer beside it, a complaint taken by phone), ``customers`` (the 360, clear reads, creation,
correction, contacts, export, erasure), ``search``, ``public`` (the customer's survey and complaint
status). They call the gateway with the person's own token (the ``Gateway`` port) and decide with
``domain``; they never speak HTTP to the browser."""

from __future__ import annotations

from .complaints import CustomerPanel, complaint_if_any, customer_panel, file_complaint, load_complaint, run_action
from .customers import (
    Customer360,
    correct_customer,
    create_customer,
    customer_360,
    erase_customer,
    export_customer,
    load_customer,
    log_contact,
)
from .deps import Deps, SessionEnded, SignInRefused, as_person
from .public import answer_survey, complaint_status, survey_form
from .queue import TooManyViews, delete_view, load_queue, save_view, saved_views, team_filter_available
from .search import SearchResults, search
from .signin import (
    choose_locale,
    complete_oidc_sign_in,
    current_session,
    mint_dev_token,
    provider_sign_out_url,
    sign_in_dev,
    sign_out,
    start_oidc_sign_in,
    sweep_sessions,
)

__all__ = ["Customer360", "CustomerPanel", "Deps", "SearchResults", "SessionEnded", "SignInRefused", "TooManyViews",
           "answer_survey", "as_person", "choose_locale", "complaint_if_any", "complaint_status", "complete_oidc_sign_in",
           "correct_customer",
           "create_customer", "current_session", "customer_360", "customer_panel", "delete_view", "erase_customer",
           "export_customer", "file_complaint", "load_complaint", "load_customer", "load_queue", "log_contact",
           "mint_dev_token", "provider_sign_out_url", "run_action", "save_view", "saved_views", "search", "sign_in_dev",
           "sign_out", "start_oidc_sign_in", "survey_form", "sweep_sessions", "team_filter_available"]

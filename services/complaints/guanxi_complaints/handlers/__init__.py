"""Use cases of the complaints service, as plain async functions over ``Deps``, one module per capability:
``intake`` (opening cases), ``cases`` (reading, and the commands people give), ``watcher`` (deadlines),
``crisis`` (early warning), ``erasure`` and ``kpis``."""

from .cases import (
    Command,
    acknowledge,
    assign,
    await_customer,
    close,
    customer_responded,
    get_case,
    give_preliminary_opinion,
    list_cases,
    reopen,
    resolve,
    run_command,
    start_investigation,
    status_page,
)
from .crisis import count_arrival, count_low_score, end_quiet_episodes
from .deps import CONTRACTS, SOURCE, Deps, to_cloud_events
from .erasure import on_customer_erased
from .intake import on_complaint_received, on_survey_low_score, open_case
from .kpis import complaint_kpis
from .watcher import watch_once

__all__ = [
    "CONTRACTS", "SOURCE", "Command", "Deps", "acknowledge", "assign", "await_customer", "close", "complaint_kpis",
    "count_arrival", "count_low_score", "customer_responded", "end_quiet_episodes", "get_case", "give_preliminary_opinion",
    "list_cases", "on_complaint_received", "on_customer_erased", "on_survey_low_score", "open_case", "reopen",
    "resolve", "run_command", "start_investigation", "status_page", "to_cloud_events", "watch_once",
]

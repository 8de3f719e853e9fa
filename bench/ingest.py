"""Ingest: the real customer and surveys services.

``python -m bench`` runs them as separate processes (``__main__.run_ingest``), as deployed;
``apps``/``running`` run them in one process via ``build(settings)``, which was measured first:
there (and as a process too) the surveys service committed nothing within 90 s next to the
customer service, while alone in its process it consumed 500 purchases in about 6 s. Both consume
the same ``purchase.completed`` backlog in their own consumer groups. Progress is read from their
committed offsets: they commit only after the effects are stored.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from guanxi_customer.app import build as build_customer
from guanxi_customer.settings import CustomerSettings
from guanxi_surveys.app import build as build_surveys
from guanxi_surveys.settings import SurveysSettings


def settings_for(kafka: str, mongodb_url: str, prefix: str, suffix: str) -> tuple[CustomerSettings, SurveysSettings]:
    common: dict[str, Any] = {"kafka_bootstrap_servers": kafka, "mongodb_url": mongodb_url, "topic_prefix": prefix,
                              "log_level": "WARNING"}
    customer = CustomerSettings(**common, mongodb_database=f"bench_customer_{suffix}",
                                consumer_group=f"bench-customer-{suffix}")
    surveys = SurveysSettings(**common, mongodb_database=f"bench_surveys_{suffix}",
                              consumer_group=f"bench-surveys-{suffix}")
    return customer, surveys


@contextlib.asynccontextmanager
async def running(*apps: FastAPI) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
        yield


def apps(customer: CustomerSettings, surveys: SurveysSettings, which: str = "both") -> list[FastAPI]:
    out = []
    if which in ("both", "customer"):
        out.append(build_customer(customer))
    if which in ("both", "surveys"):
        out.append(build_surveys(surveys))
    return out

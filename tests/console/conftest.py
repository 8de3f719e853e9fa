"""The console in a real browser on the real platform: the five services and the gateway as
subprocesses (as tests/conftest.py's e2e_platform starts them), the console as one more, pointed at
the gateway, and Debian's chromium driven by Playwright's async API (``make browser`` installs it;
never ``playwright install``). ``sso_stack`` adds single sign-on: a test OpenID Connect provider, a
second gateway that accepts only its tokens (JWKS) in front of the same services, and a second console
in production mode pointed at both."""

from __future__ import annotations

import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from console_support import CHROMIUM, ConsoleStack, SsoStack, drop_databases
from e2e_support import (
    SERVICES,
    MailSink,
    Platform,
    Process,
    TraceReceiver,
    base_env,
    free_port,
    spawn,
    stop,
    wait_ready,
)
from guanxi_shared.testing import Infra, create_topics, delete_topics
from guanxi_shared.topics import CATALOGUE
from oidc_provider import API_AUDIENCE, SsoProvider, serving
from playwright.async_api import Browser, BrowserContext, Playwright, async_playwright


@pytest.fixture(scope="session")
async def console_stack(infra: Infra, mail_sink: MailSink, trace_receiver: TraceReceiver) -> AsyncIterator[ConsoleStack]:
    run = uuid.uuid4().hex[:8]
    prefix = f"ui{run}."
    names = [prefix + t.name for t in CATALOGUE] + [prefix + t.dlq for t in CATALOGUE]
    await create_topics(infra.kafka, names, partitions=1)
    logdir = Path(tempfile.mkdtemp(prefix=f"guanxi-console-{run}-"))
    ports = {name: free_port() for name in (*SERVICES, "gateway", "console")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    common = {"KAFKA_BOOTSTRAP_SERVERS": infra.kafka, "MONGODB_URL": infra.mongodb_url, "GUANXI_TOPIC_PREFIX": prefix,
              "GUANXI_ENV": "local", "LOG_LEVEL": "INFO", "OTEL_EXPORTER_OTLP_ENDPOINT": trace_receiver.endpoint,
              "OTEL_BSP_SCHEDULE_DELAY": "1000"}
    per_service: dict[str, dict[str, str]] = {
        "customer": {},
        # The agent acknowledges in the browser: no automatic acknowledgement on intake. New cases go to a
        # team by category (billing: alice's team-east), and the customer's status link opens the console.
        "complaints": {"COMPLAINTS_AUTO_ACKNOWLEDGE": "false", "COMPLAINTS_STATUS_LINK_BASE": urls["console"] + "/c",
                       "COMPLAINTS_TEAM_BY_CATEGORY": '{"billing": "team-east", "delivery": "team-west"}',
                       "COMPLAINTS_DEFAULT_TEAM": "team-east"},
        # The post-resolution survey goes out at once and at any hour, so the test can answer it.
        "surveys": {"SURVEYS_LINK_BASE_URL": urls["console"] + "/s", "SURVEYS_POST_RESOLUTION_MIN_DAYS": "0",
                    "SURVEYS_POST_RESOLUTION_MAX_DAYS": "0.02", "SURVEYS_QUIET_START": "00:00",
                    "SURVEYS_QUIET_END": "00:00", "SURVEYS_SCHEDULER_INTERVAL_SECONDS": "0.5"},
        "notifications": {"NOTIFICATIONS_SMTP_HOST": "127.0.0.1", "NOTIFICATIONS_SMTP_PORT": str(mail_sink.port),
                          "NOTIFICATIONS_CUSTOMER_BASE_URL": urls["customer"], "NOTIFICATIONS_QUIET_HOURS_START": "00:00",
                          "NOTIFICATIONS_QUIET_HOURS_END": "00:00", "NOTIFICATIONS_DISPATCH_INTERVAL_SECONDS": "0.5"},
        "audit": {},
    }
    processes: dict[str, Process] = {}
    try:
        for name in SERVICES:
            env = base_env(**common, **per_service[name], **{
                f"{name.upper()}_HTTP_PORT": str(ports[name]), f"{name.upper()}_MONGODB_DATABASE": f"ui_{name}_{run}",
                f"{name.upper()}_CONSUMER_GROUP": f"ui-{name}-{run}", f"{name.upper()}_OUTBOX_POLL_SECONDS": "0.2"})
            processes[name] = spawn(name, ports[name], env, logdir)
        wait_ready(list(processes.values()), timeout=120)
        services = dict(processes)
        gateway_env = base_env(**common, **{f"GATEWAY_{svc.upper()}_URL": urls[svc] for svc in SERVICES},
                               GATEWAY_RATE_LIMIT_PER_IDENTITY="100000", GATEWAY_RATE_LIMIT_PER_IP="100000",
                               GATEWAY_HTTP_PORT=str(ports["gateway"]), GATEWAY_MONGODB_DATABASE=f"ui_gateway_{run}",
                               GATEWAY_CONSUMER_GROUP=f"ui-gateway-{run}")
        gateway = processes["gateway"] = spawn("gateway", ports["gateway"], gateway_env, logdir)
        wait_ready([gateway], timeout=60)
        # The console keeps sessions and saved views in its own database; it has no Kafka.
        console_env = base_env(GUANXI_ENV="local", LOG_LEVEL="INFO", OTEL_EXPORTER_OTLP_ENDPOINT=trace_receiver.endpoint,
                               MONGODB_URL=infra.mongodb_url, CONSOLE_MONGODB_DATABASE=f"ui_console_{run}",
                               CONSOLE_HTTP_PORT=str(ports["console"]), CONSOLE_GATEWAY_URL=urls["gateway"],
                               CONSOLE_PUBLIC_URL=urls["console"], CONSOLE_QUEUE_REFRESH_SECONDS="2")
        console = processes["console"] = spawn("console", ports["console"], console_env, logdir)
        wait_ready([console], timeout=60)
        platform = Platform(gateway, services, mail_sink, trace_receiver, prefix, infra.kafka, logdir)
        yield ConsoleStack(platform, console)
    finally:
        stop(list(processes.values()))
        await delete_topics(infra.kafka, names)
        await drop_databases(infra.mongodb_url, [f"ui_{name}_{run}" for name in (*SERVICES, "gateway", "console")])


@pytest.fixture(scope="session")
async def sso_stack(console_stack: ConsoleStack, infra: Infra, trace_receiver: TraceReceiver) -> AsyncIterator[SsoStack]:
    """Single sign-on on the same services: the test provider, a gateway that verifies its tokens through
    its JWKS (GATEWAY_JWKS_URL; a locally signed token means nothing there) and a console in production
    mode (no roster, no minted tokens) whose only way in is the provider."""
    run = uuid.uuid4().hex[:8]
    platform = console_stack.platform
    logdir = Path(tempfile.mkdtemp(prefix=f"guanxi-sso-{run}-"))
    ports = {name: free_port() for name in ("idp", "gateway", "console")}
    console_url = f"http://127.0.0.1:{ports['console']}"
    provider = SsoProvider(ports["idp"], "guanxi-console", redirect_uris=[console_url + "/signin/oidc/callback"],
                           post_logout_uris=[console_url + "/signin/oidc/signed-out"])
    processes: list[Process] = []
    with serving(provider):
        try:
            gateway_env = base_env(
                KAFKA_BOOTSTRAP_SERVERS=platform.kafka, MONGODB_URL=infra.mongodb_url, GUANXI_TOPIC_PREFIX=platform.prefix,
                GUANXI_ENV="local", LOG_LEVEL="INFO", OTEL_EXPORTER_OTLP_ENDPOINT=trace_receiver.endpoint,
                OTEL_BSP_SCHEDULE_DELAY="1000", **{f"GATEWAY_{svc.upper()}_URL": platform.services[svc].url for svc in SERVICES},
                GATEWAY_RATE_LIMIT_PER_IDENTITY="100000", GATEWAY_RATE_LIMIT_PER_IP="100000",
                GATEWAY_HTTP_PORT=str(ports["gateway"]), GATEWAY_MONGODB_DATABASE=f"ui_gateway_sso_{run}",
                GATEWAY_CONSUMER_GROUP=f"ui-gateway-sso-{run}", GATEWAY_JWKS_URL=f"{provider.issuer}/jwks",
                GATEWAY_JWT_ISSUER=provider.issuer, GATEWAY_JWT_AUDIENCE=API_AUDIENCE, GATEWAY_JWT_ROLES_CLAIM="roles")
            gateway = spawn("gateway", ports["gateway"], gateway_env, logdir)
            processes.append(gateway)
            wait_ready([gateway], timeout=60)
            console_env = base_env(
                GUANXI_ENV="production", GUANXI_INTERNAL_SECRET=secrets.token_urlsafe(32), LOG_LEVEL="INFO",
                OTEL_EXPORTER_OTLP_ENDPOINT=trace_receiver.endpoint, MONGODB_URL=infra.mongodb_url,
                MONGODB_MAX_POOL_SIZE="1", CONSOLE_MONGODB_DATABASE=f"ui_console_sso_{run}",
                CONSOLE_HTTP_PORT=str(ports["console"]), CONSOLE_GATEWAY_URL=gateway.url, CONSOLE_PUBLIC_URL=console_url,
                CONSOLE_SESSION_SECRET=secrets.token_urlsafe(32), CONSOLE_OIDC_ISSUER=provider.issuer,
                CONSOLE_OIDC_CLIENT_ID=provider.client_id)
            console = spawn("console", ports["console"], console_env, logdir)
            processes.append(console)
            wait_ready([console], timeout=60)
            yield SsoStack(provider, gateway, console)
        finally:
            stop(processes)
            await drop_databases(infra.mongodb_url, [f"ui_gateway_sso_{run}", f"ui_console_sso_{run}"])


@pytest.fixture(scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium fonts-noto-cjk)")
    driver = await async_playwright().start()
    yield driver
    await driver.stop()


@pytest.fixture(scope="session")
async def browser(playwright: Playwright) -> AsyncIterator[Browser]:
    chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
    yield chromium
    await chromium.close()


@pytest.fixture
async def desktop(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN",
                                        timezone_id="Asia/Shanghai")
    context.set_default_timeout(20_000)
    yield context
    await context.close()


@pytest.fixture
async def phone(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(viewport={"width": 375, "height": 667}, device_scale_factor=2, is_mobile=True,
                                        has_touch=True, locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(20_000)
    yield context
    await context.close()



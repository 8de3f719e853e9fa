"""Helpers of the console's browser tests (tests/console): where screenshots go, the running stack."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e_support import REPO, Platform, Process
from oidc_provider import SsoProvider
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

CHROMIUM = Path("/usr/lib/chromium/chromium")
SCREENSHOTS = REPO / "docs" / "console"


@dataclass
class ConsoleStack:
    platform: Platform
    console: Process
    survey_tokens: list[str] = field(default_factory=list)
    # What one journey leaves for the next (the customer, their email, the survey and status links).
    journey: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.console.url

    def logs(self) -> str:
        return f"{self.platform.logs()}\n--- console\n{self.console.tail(40)}"


@dataclass
class SsoStack:
    """Single sign-on beside the stack: the test provider, its gateway (JWKS) and a production console."""

    provider: SsoProvider
    gateway: Process
    console: Process

    @property
    def url(self) -> str:
        return self.console.url

    def logs(self) -> str:
        return f"--- sso gateway\n{self.gateway.tail(30)}\n--- sso console\n{self.console.tail(30)}"


async def drop_databases(url: str, names: list[str]) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, serverSelectionTimeoutMS=5_000)
    try:
        for name in names:
            await client.drop_database(name)
    except PyMongoError:
        pass  # cleanup only
    finally:
        await client.close()


def screenshot_path(name: str) -> str:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return str(SCREENSHOTS / f"{name}.png")

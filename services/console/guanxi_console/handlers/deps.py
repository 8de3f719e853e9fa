"""What every use case of the console gets (``Deps``), the refusals they share, and the one way they
call the gateway as a person (``as_person``: a 401 ends that person's session)."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from guanxi_shared.clock import Clock
from guanxi_shared.errors import Forbidden

from ..domain import Session
from ..gateway import Gateway, Unauthenticated
from ..identity import IdentityProvider
from ..settings import ConsoleSettings
from ..store import ConsoleStore

T = TypeVar("T")


@dataclass
class Deps:
    settings: ConsoleSettings
    gateway: Gateway
    store: ConsoleStore
    clock: Clock
    identity: IdentityProvider | None = None  # the OpenID Connect provider, when configured


class SignInRefused(Forbidden):
    title = "Sign-in refused"


class SessionEnded(Exception):
    """The person must sign in again (signed out elsewhere, idle, too old, or the gateway refused the token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def as_person(deps: Deps, session: Session, call: Awaitable[T]) -> T:
    """Run a gateway call made with the person's token; a 401 ends the session (sign in again)."""
    try:
        return await call
    except Unauthenticated as exc:
        await deps.store.delete_session(session.id)
        raise SessionEnded("token_rejected") from exc

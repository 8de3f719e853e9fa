"""The service template of docs/architecture.md, checked on every service's source (no infrastructure)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = sorted(p.parent.name for p in ROOT.glob("services/*/pyproject.toml"))
ROOMS = ("domain", "handlers", "store", "subscribers", "api", "settings", "app")
# The gateway and the console consume no events: they have nothing to subscribe.
CONSUMES_NOTHING = {"gateway", "console"}
IO_LIBRARIES = {"pymongo", "motor", "httpx", "fastapi", "starlette", "faststream", "aiokafka", "requests", "socket",
                "smtplib", "aiosmtplib", "uvicorn"}
IO_SHARED = {"guanxi_shared.store", "guanxi_shared.outbox", "guanxi_shared.runtime", "guanxi_shared.messaging",
             "guanxi_shared.testing"}


def package(service: str) -> Path:
    return ROOT / "services" / service / f"guanxi_{service}"


def room_files(service: str, room: str) -> list[Path]:
    """The module ``room.py``, or every module of the package ``room/``."""
    base = package(service)
    if (base / f"{room}.py").exists():
        return [base / f"{room}.py"]
    return sorted((base / room).glob("*.py"))


def imported(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_there_are_seven_services() -> None:
    assert SERVICES == ["audit", "complaints", "console", "customer", "gateway", "notifications", "surveys"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_rooms(service: str) -> None:
    missing = [room for room in ROOMS if not room_files(service, room)
               and not (room == "subscribers" and service in CONSUMES_NOTHING)]
    assert not missing, f"{service} lacks {missing} (docs/architecture.md)"


@pytest.mark.parametrize("service", SERVICES)
def test_the_domain_is_pure(service: str) -> None:
    bad = [(rel(f), m) for f in room_files(service, "domain") for m in imported(f)
           if m.split(".")[0] in IO_LIBRARIES or any(m == s or m.startswith(s + ".") for s in IO_SHARED)]
    assert not bad, f"domain modules import I/O: {bad}"


@pytest.mark.parametrize("service", SERVICES)
def test_handlers_speak_neither_http_nor_mongo(service: str) -> None:
    bad = [(rel(f), m) for f in room_files(service, "handlers") for m in imported(f)
           if m.split(".")[0] in {"pymongo", "fastapi", "starlette"} or m.startswith("guanxi_shared.problems")]
    assert not bad, f"handlers import HTTP or store libraries: {bad}"


@pytest.mark.parametrize("service", SERVICES)
def test_only_the_composition_root_constructs_the_runtime(service: str) -> None:
    offenders = [rel(f) for f in package(service).rglob("*.py")
                 if f.name != "app.py" and re.search(r"\bServiceRuntime\(", f.read_text())]
    assert not offenders


@pytest.mark.parametrize("service", SERVICES)
def test_every_store_offers_a_protocol_a_mongo_implementation_and_a_fake(service: str) -> None:
    classes: dict[str, list[str]] = {}
    for f in room_files(service, "store"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ClassDef):
                classes[node.name] = [ast.unparse(b) for b in node.bases]
    protocols = [n for n, bases in classes.items() if any(b.endswith("Protocol") for b in bases)]
    assert protocols, f"{service}: no store Protocol"
    assert [n for n in classes if n.startswith("Mongo")], f"{service}: no Mongo… store"
    assert [n for n in classes if n.startswith("InMemory")], f"{service}: no InMemory… fake store"


@pytest.mark.parametrize("service", SERVICES)
def test_the_local_engine_is_named_only_in_the_store(service: str) -> None:
    """FerretDB's quirks are contained in the store layer: application code reads as MongoDB code."""
    store = set(room_files(service, "store"))
    named = [rel(f) for f in package(service).rglob("*.py") if f not in store and "ferretdb" in f.read_text().lower()]
    assert not named

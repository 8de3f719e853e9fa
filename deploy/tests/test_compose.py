"""docker-compose.yml cannot be started here (no Docker engine); this checks its structure instead."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["customer", "complaints", "surveys", "notifications", "audit", "gateway"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def settings_class(name: str) -> Any:
    module = importlib.import_module(f"guanxi_{name}.settings")
    return next(v for k, v in vars(module).items() if k.endswith("Settings") and k != "ServiceSettings"
                and getattr(v, "service_name", None) == name)


def test_every_service_and_the_infrastructure_is_present(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in [*SERVICES, "kafka", "mongodb", "otel-collector", "jaeger"]:
        assert name in services, f"{name} missing from docker-compose.yml"
    for name in SERVICES:
        spec = services[name]
        assert spec["build"]["dockerfile"] == f"services/{name}/Dockerfile"
        assert (ROOT / spec["build"]["dockerfile"]).exists()
        assert "healthcheck" in spec, f"{name} has no health check"


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        image = spec.get("image", "")
        assert image and ":" in image and not image.endswith(":latest"), f"{name}: image {image!r} is not pinned"
    for name in SERVICES:
        dockerfile = (ROOT / f"services/{name}/Dockerfile").read_text()
        for ref in re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.M):
            assert ":" in ref and not ref.endswith(":latest"), f"{name}/Dockerfile: {ref} not pinned"


def test_each_service_has_its_own_database(compose: dict[str, Any]) -> None:
    databases = set()
    for name in SERVICES:
        env = compose["services"][name]["environment"]
        prefix = name.upper()
        assert env[f"{prefix}_MONGODB_URL"].startswith("mongodb://mongodb:")
        databases.add(env[f"{prefix}_MONGODB_DATABASE"])
    assert len(databases) == len(SERVICES)


def test_environment_names_match_the_settings_classes(compose: dict[str, Any]) -> None:
    common = {"GUANXI_ENV", "KAFKA_BOOTSTRAP_SERVERS", "GUANXI_INTERNAL_SECRET", "LOG_LEVEL", "MONGODB_URL",
              "GUANXI_TOPIC_PREFIX"}
    for name in SERVICES:
        cls = settings_class(name)
        prefix = name.upper() + "_"
        fields = {f.upper() for f in cls.model_fields}
        env = compose["services"][name]["environment"]
        for key in env:
            if key.startswith("OTEL_"):
                continue  # standard OpenTelemetry variables, read by the SDK
            if key.startswith(prefix):
                assert key[len(prefix):] in fields, f"{name}: {key} is not a field of {cls.__name__}"
            else:
                assert key in common, f"{name}: {key} is neither prefixed {prefix} nor a shared variable"


def test_gateway_knows_where_every_service_is(compose: dict[str, Any]) -> None:
    env = compose["services"]["gateway"]["environment"]
    for name in SERVICES[:-1]:
        url = env[f"GATEWAY_{name.upper()}_URL"]
        port = compose["services"][name]["environment"][f"{name.upper()}_HTTP_PORT"]
        assert url == f"http://{name}:{port}"

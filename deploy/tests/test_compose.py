"""docker-compose.yml cannot be started here (no Docker engine); this checks its structure instead."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# Every service is built from the one deploy/Dockerfile with build args SERVICE, ENV_PREFIX and PORT
# (see the head of docker-compose.yml). A new service goes here and into the compose file.
SERVICES = ["customer", "complaints", "surveys", "notifications", "audit", "gateway", "console"]
# Services the gateway forwards /api/v1 to (the console is a client of the gateway, not behind it).
BEHIND_THE_GATEWAY = ["customer", "complaints", "surveys", "notifications", "audit"]
DOCKERFILE = "deploy/Dockerfile"
BUILD_ARGS = ("SERVICE", "ENV_PREFIX", "PORT")


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
        assert "healthcheck" in services[name], f"{name} has no health check"


def test_every_service_directory_is_listed() -> None:
    packages = {p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml")}
    missing = sorted(packages - set(SERVICES))
    assert not missing, (f"services/{missing} not in SERVICES/docker-compose.yml: add a compose entry building "
                         f"{DOCKERFILE} with args SERVICE, ENV_PREFIX, PORT")


def test_every_service_builds_from_the_one_dockerfile(compose: dict[str, Any]) -> None:
    for name in SERVICES:
        spec = compose["services"][name]
        build = spec["build"]
        assert build["context"] == ".", f"{name}: the build context must be the repository root"
        assert build["dockerfile"] == DOCKERFILE, f"{name}: builds from {build['dockerfile']}, not {DOCKERFILE}"
        args = {k: str(v) for k, v in build.get("args", {}).items()}
        assert set(args) == set(BUILD_ARGS), f"{name}: build args {sorted(args)}, expected {sorted(BUILD_ARGS)}"
        prefix = name.upper()
        port = spec["environment"][f"{prefix}_HTTP_PORT"]
        assert args["SERVICE"] == name
        assert args["ENV_PREFIX"] == prefix, f"{name}: ENV_PREFIX {args['ENV_PREFIX']!r} is not {prefix!r}"
        assert args["PORT"] == str(port), f"{name}: build arg PORT {args['PORT']} but {prefix}_HTTP_PORT {port}"
        assert int(port) == settings_class(name).model_fields["http_port"].default, f"{name}: port differs from settings"
        assert f"http://127.0.0.1:{port}/readyz" in " ".join(spec["healthcheck"]["test"]), f"{name}: health check port"
        assert spec["image"].startswith(f"guanxi/{name}:"), f"{name}: image {spec['image']!r}"
    ports = [str(compose["services"][name]["build"]["args"]["PORT"]) for name in SERVICES]
    assert len(set(ports)) == len(ports), f"two services share a port: {ports}"


def test_the_dockerfile_is_parameterised() -> None:
    assert not sorted((ROOT / "services").glob("*/Dockerfile")), "per-service Dockerfiles are replaced by deploy/Dockerfile"
    dockerfile = (ROOT / DOCKERFILE).read_text()
    stages = re.split(r"^FROM\s", dockerfile, flags=re.M)[1:]
    assert len(stages) == 3, "multi-stage: the console's assets (npm ci), a build stage with uv and a runtime stage"
    assets, build, runtime = stages
    for stage in (build, runtime):  # an ARG is visible only in the stage that declares it
        declared = set(re.findall(r"^ARG\s+(\w+)", stage, flags=re.M))
        assert set(BUILD_ARGS) <= declared, f"a stage does not declare ARG {sorted(set(BUILD_ARGS) - declared)}"
    assert " AS assets" in assets.splitlines()[0] and re.search(r"^ARG SERVICE$", assets, flags=re.M)
    # The console's htmx and echarts come from its pinned lock, installed in the image (no CDN at run time).
    assert "COPY services/console/package.json services/console/package-lock.json" in assets
    assert re.search(r'if \[ "\$SERVICE" = "console" \]; then npm ci ', assets)
    assert "COPY --from=assets /assets/node_modules ./services/console/node_modules" in build
    assert "uv sync --frozen --no-dev --package \"guanxi-${SERVICE}\"" in build
    assert re.search(r"^ENV .*\$\{ENV_PREFIX\}_HTTP_HOST=0\.0\.0\.0", runtime, flags=re.M | re.S)
    assert "${ENV_PREFIX}_HTTP_PORT=${PORT}" in runtime
    assert "--uid 10001" in runtime and re.search(r"^USER guanxi$", runtime, flags=re.M)
    assert re.search(r"^EXPOSE \$\{PORT\}$", runtime, flags=re.M)
    assert re.search(r"^HEALTHCHECK .*/readyz", runtime, flags=re.M)
    assert re.search(r"^CMD .*python -m .*guanxi_\$\{GUANXI_SERVICE\}", runtime, flags=re.M)


def test_settings_read_the_prefixed_http_variables() -> None:
    # The image sets <ENV_PREFIX>_HTTP_HOST/_HTTP_PORT; this holds only while each settings class uses that prefix.
    for name in SERVICES:
        cls = settings_class(name)
        assert cls.model_config.get("env_prefix") == f"{name.upper()}_", f"{name}: settings prefix"
        assert {"http_host", "http_port"} <= set(cls.model_fields)


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        image = spec.get("image", "")
        assert image and ":" in image and not image.endswith(":latest"), f"{name}: image {image!r} is not pinned"
    dockerfile = (ROOT / DOCKERFILE).read_text()
    refs = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.M) + re.findall(r"--from=(\S+:\S+)", dockerfile)
    for ref in refs:
        assert ":" in ref and not ref.endswith(":latest"), f"{DOCKERFILE}: {ref} not pinned"


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
    for name in BEHIND_THE_GATEWAY:
        url = env[f"GATEWAY_{name.upper()}_URL"]
        port = compose["services"][name]["environment"][f"{name.upper()}_HTTP_PORT"]
        assert url == f"http://{name}:{port}"


def test_the_console_calls_the_gateway_and_keeps_its_sessions_in_its_own_database(compose: dict[str, Any]) -> None:
    spec = compose["services"]["console"]
    env = spec["environment"]
    assert env["CONSOLE_GATEWAY_URL"] == "http://gateway:8000"
    assert "gateway" in spec["depends_on"] and "mongodb" in spec["depends_on"]
    assert "CONSOLE_GATEWAY_URL" not in compose["services"]["gateway"]["environment"]

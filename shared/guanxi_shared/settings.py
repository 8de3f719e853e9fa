"""Settings base shared by every service (pydantic-settings).

Common variables are read unprefixed (``KAFKA_BOOTSTRAP_SERVERS``, ``MONGODB_URL``, standard
``OTEL_*``) and may be overridden per service with the service's prefix, e.g.
``COMPLAINTS_MONGODB_URL``. Service-specific options always carry the prefix.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "guanxi-local-development-secret-change-me"  # noqa: S105 - refused outside local mode


def _common(name: str, default: Any, **kw: Any) -> Any:
    """A field read from ``<PREFIX><NAME>`` first, then from the unprefixed ``<NAME>``."""
    return Field(default, validation_alias=AliasChoices(name.lower(), name), **kw)


class ServiceSettings(BaseSettings):
    """Base for each service's settings; subclasses set ``env_prefix`` and ``service_name``."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "guanxi"
    service_version: ClassVar[str] = "0.1.0"

    environment: str = _common("GUANXI_ENV", "local", description="local | production")
    kafka_bootstrap_servers: str = _common("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    mongodb_url: str = _common("MONGODB_URL", "mongodb://127.0.0.1:27017")
    mongodb_database: str = Field("", description="defaults to guanxi_<service>")
    # FerretDB 1.24 (the local store) does not make one update atomic against updates arriving on
    # other connections: concurrent $inc/$set/$unset on one document lose writes (the outbox
    # relay's $unset can overwrite a handler's $inc; shared/tests/test_store.py shows it). One connection
    # per process serialises the process's store operations, which SQLite serialises anyway.
    # 0 = automatic: 1 in local mode (FerretDB), the driver's default (100) elsewhere (MongoDB).
    mongodb_max_pool_size: int = _common("MONGODB_MAX_POOL_SIZE", 0, ge=0)
    # Reads do not lose anything across connections; a service may give its hot reads (e.g. a profile
    # by id) this separate pool so that they neither queue behind each other on the one writing
    # connection nor behind background scans (ServiceRuntime.read_db).
    mongodb_read_pool_size: int = _common("MONGODB_READ_POOL_SIZE", 8, ge=1)
    topic_prefix: str = _common("GUANXI_TOPIC_PREFIX", "", description="test isolation only")
    consumer_group: str = Field("", description="defaults to guanxi-<service>")
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    log_level: str = _common("LOG_LEVEL", "INFO")
    # Identity: the gateway signs an internal header, services verify it; services calling each
    # other use a service token signed with the same secret.
    internal_secret: SecretStr = _common("GUANXI_INTERNAL_SECRET", SecretStr(DEV_SECRET))
    # Consumption: bounded retries before the dead-letter topic; batch size per poll.
    max_delivery_attempts: int = Field(3, ge=1, le=20)
    batch_max_records: int = Field(500, ge=1, le=10_000)
    outbox_poll_seconds: float = Field(0.5, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _service_overrides(cls, values: Any) -> Any:
        # A prefixed variable (COMPLAINTS_MONGODB_URL) wins over the shared one (MONGODB_URL).
        prefix = cls.model_config.get("env_prefix", "")
        if not prefix or not isinstance(values, dict):
            return values
        for name, field in ServiceSettings.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                env_name = str(alias.choices[-1])
                override = os.environ.get(prefix + env_name)
                if override is not None:
                    values = {**values, name: override}
        return values

    @model_validator(mode="after")
    def _defaults(self) -> ServiceSettings:
        if not self.mongodb_database:
            object.__setattr__(self, "mongodb_database", f"guanxi_{self.service_name}")
        if not self.consumer_group:
            object.__setattr__(self, "consumer_group", f"guanxi-{self.service_name}")
        if self.environment != "local" and self.internal_secret.get_secret_value() == DEV_SECRET:
            raise ValueError("GUANXI_INTERNAL_SECRET must be set outside local mode")
        return self

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

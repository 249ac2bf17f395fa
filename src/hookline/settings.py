"""The one reader of the environment: every setting, its default, unit and bound.

``Settings()`` is built once, by the CLI, and validated there: a bad value stops the process with a
message that names the variable. Durations are seconds (floats allowed); sizes are bytes.
Every field here has a line in ``.env.example`` (a test keeps the two in step).
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hookline.domain.signing import validate_secret

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class QueueBackend(StrEnum):
    """Where due times live: ``auto`` picks ``redis`` when ``REDIS_URL`` is set, else ``sql``."""

    AUTO = "auto"
    SQL = "sql"
    REDIS = "redis"


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """hookline's configuration, read from the environment (and ``.env`` when present)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # Storage
    data_dir: Path = Field(Path(".hookline"), validation_alias=_env("HOOKLINE_DATA_DIR"))
    database_url: str | None = Field(None, validation_alias=_env("DATABASE_URL"))
    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL"))
    queue_backend: QueueBackend = Field(
        QueueBackend.AUTO, validation_alias=_env("HOOKLINE_QUEUE_BACKEND")
    )
    redis_key_prefix: str = Field(
        "hookline:", min_length=1, max_length=64, validation_alias=_env("HOOKLINE_REDIS_PREFIX")
    )
    database_pool_size: int = Field(10, ge=1, le=200, validation_alias=_env("DATABASE_POOL_SIZE"))

    # API
    api_tokens: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("HOOKLINE_API_TOKENS")
    )
    max_payload_bytes: int = Field(
        256 * 1024, ge=1, le=64 * 1024 * 1024, validation_alias=_env("MAX_PAYLOAD_BYTES")
    )

    # Delivery
    allowed_networks: Annotated[list[IPNetwork], NoDecode] = Field(
        default_factory=list, validation_alias=_env("ALLOWED_NETWORKS")
    )
    delivery_connect_timeout_s: float = Field(
        5.0, gt=0, le=300, validation_alias=_env("DELIVERY_CONNECT_TIMEOUT")
    )
    delivery_timeout_s: float = Field(15.0, gt=0, le=900, validation_alias=_env("DELIVERY_TIMEOUT"))
    secret_rotation_grace_s: float = Field(
        86400.0, ge=0, validation_alias=_env("SECRET_ROTATION_GRACE")
    )

    # Worker and queue
    retry_worker_poll_interval_s: float = Field(
        1.0, gt=0, le=3600, validation_alias=_env("RETRY_WORKER_POLL_INTERVAL")
    )
    retry_queue_max_size: int = Field(
        1_000_000, ge=1, validation_alias=_env("RETRY_QUEUE_MAX_SIZE")
    )
    worker_concurrency: int = Field(
        100, ge=1, le=10_000, validation_alias=_env("WORKER_CONCURRENCY")
    )
    worker_endpoint_concurrency: int = Field(
        10, ge=1, le=10_000, validation_alias=_env("WORKER_ENDPOINT_CONCURRENCY")
    )
    worker_batch_size: int = Field(100, ge=1, le=5_000, validation_alias=_env("WORKER_BATCH_SIZE"))
    lease_duration_s: float = Field(60.0, ge=1, le=3600, validation_alias=_env("LEASE_DURATION"))
    shutdown_grace_period_s: float = Field(
        30.0, ge=0, le=3600, validation_alias=_env("SHUTDOWN_GRACE_PERIOD")
    )
    sweeper_interval_s: float = Field(
        30.0, gt=0, le=86400, validation_alias=_env("SWEEPER_INTERVAL")
    )

    # Endpoint health and retention
    failure_disable_window_s: float = Field(
        86400.0, gt=0, validation_alias=_env("FAILURE_DISABLE_WINDOW")
    )
    retention_days: float = Field(30.0, gt=0, validation_alias=_env("RETENTION_DAYS"))

    # Endpoints that come back: parked deliveries, probes, slow-start recovery
    parked_max_per_endpoint: int = Field(
        10_000, ge=1, le=10_000_000, validation_alias=_env("PARKED_MAX_PER_ENDPOINT")
    )
    parked_max_age_s: float = Field(7 * 86400.0, gt=0, validation_alias=_env("PARKED_MAX_AGE"))
    probe_min_interval_s: float = Field(
        60.0, gt=0, le=86400, validation_alias=_env("PROBE_MIN_INTERVAL")
    )
    probe_max_interval_s: float = Field(
        3600.0, gt=0, le=86400, validation_alias=_env("PROBE_MAX_INTERVAL")
    )
    probe_successes: int = Field(3, ge=1, le=100, validation_alias=_env("PROBE_SUCCESSES"))
    recovery_start_rate: float = Field(
        1.0, gt=0, le=10_000, validation_alias=_env("RECOVERY_START_RATE")
    )
    recovery_max_rate: float = Field(
        50.0, gt=0, le=10_000, validation_alias=_env("RECOVERY_MAX_RATE")
    )
    recovery_max_failures: int = Field(
        5, ge=1, le=1000, validation_alias=_env("RECOVERY_MAX_FAILURES")
    )
    lifecycle_interval_s: float = Field(
        1.0, gt=0, le=3600, validation_alias=_env("LIFECYCLE_INTERVAL")
    )

    # Observability
    log_level: str = Field("INFO", validation_alias=_env("LOG_LEVEL"))
    log_format: LogFormat = Field(LogFormat.JSON, validation_alias=_env("LOG_FORMAT"))
    metrics_host: str = Field("127.0.0.1", min_length=1, validation_alias=_env("METRICS_HOST"))
    metrics_port: int = Field(9100, ge=0, le=65535, validation_alias=_env("METRICS_PORT"))
    metrics_cache_s: float = Field(5.0, ge=0, le=300, validation_alias=_env("METRICS_CACHE"))
    # Tracing: the standard OpenTelemetry variables. The SDK reads the rest of them itself
    # (OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER, OTEL_RESOURCE_ATTRIBUTES, ...).
    otel_exporter_otlp_endpoint: str = Field(
        "", validation_alias=_env("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    otel_exporter_otlp_traces_endpoint: str = Field(
        "", validation_alias=_env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    otel_service_name: str = Field(
        "hookline", min_length=1, validation_alias=_env("OTEL_SERVICE_NAME")
    )
    trace_propagation: bool = Field(True, validation_alias=_env("HOOKLINE_TRACE_PROPAGATION"))
    alert_webhook_url: str = Field("", validation_alias=_env("ALERT_WEBHOOK_URL"))
    alert_webhook_secret: str = Field("", validation_alias=_env("ALERT_WEBHOOK_SECRET"))
    alert_min_interval_s: float = Field(
        300.0, ge=0, le=86400, validation_alias=_env("ALERT_MIN_INTERVAL")
    )

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _tokens_from_commas(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _networks_from_commas(cls, value: object) -> object:
        parts = _split_commas(value)
        if isinstance(parts, list):
            return [
                ipaddress.ip_network(p, strict=False) if isinstance(p, str) else p for p in parts
            ]
        return parts

    @field_validator("api_tokens")
    @classmethod
    def _tokens_long_enough(cls, tokens: list[str]) -> list[str]:
        for token in tokens:
            if len(token) < 16:
                raise ValueError("each token must be at least 16 characters")
        return tokens

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @model_validator(mode="after")
    def _redis_needs_url(self) -> Self:
        if self.queue_backend is QueueBackend.REDIS and not self.redis_url:
            raise ValueError("HOOKLINE_QUEUE_BACKEND=redis needs REDIS_URL to be set")
        if self.delivery_connect_timeout_s > self.delivery_timeout_s:
            raise ValueError("DELIVERY_CONNECT_TIMEOUT must not exceed DELIVERY_TIMEOUT")
        if self.probe_min_interval_s > self.probe_max_interval_s:
            raise ValueError("PROBE_MIN_INTERVAL must not exceed PROBE_MAX_INTERVAL")
        if self.recovery_start_rate > self.recovery_max_rate:
            raise ValueError("RECOVERY_START_RATE must not exceed RECOVERY_MAX_RATE")
        if self.alert_webhook_url and not self.alert_webhook_secret:
            raise ValueError("ALERT_WEBHOOK_URL needs ALERT_WEBHOOK_SECRET (alerts are signed)")
        if self.alert_webhook_secret:
            try:
                validate_secret(self.alert_webhook_secret)
            except ValueError as exc:
                raise ValueError(f"ALERT_WEBHOOK_SECRET: {exc}") from exc
        return self

    @property
    def effective_database_url(self) -> str:
        """``DATABASE_URL``, or a SQLite file under the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'hookline.db').resolve()}"

    @property
    def tracing_enabled(self) -> bool:
        """Spans are exported only when an OTLP endpoint is configured."""
        return bool(self.otel_exporter_otlp_endpoint or self.otel_exporter_otlp_traces_endpoint)

    @property
    def effective_queue_backend(self) -> QueueBackend:
        """The backend ``auto`` resolves to."""
        if self.queue_backend is QueueBackend.AUTO:
            return QueueBackend.REDIS if self.redis_url else QueueBackend.SQL
        return self.queue_backend

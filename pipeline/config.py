"""The one place that reads the environment: a frozen pydantic-settings ``Settings`` (prefix ``LEADPIPE_``).

Every other module receives a ``Settings`` (or the values it needs) as an argument, so tests build their own
without touching ``os.environ``. Secrets are ``SecretStr`` so they never print in a repr or a log line.
"""

from __future__ import annotations

import base64
import os
import secrets
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.models.common import Channel
from pipeline.models.identity import Role


def _default_home() -> Path:
    return Path.home() / ".local" / "share" / "leadpipe"


def _default_cache() -> Path:
    return Path.home() / ".cache" / "leadpipe"


class SourceSecret(BaseModel):
    """One HMAC secret of a source. Two may be active at once, so a source switches to a new one without downtime."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=64, description="A label (not secret) logged when it matches")
    secret: SecretStr
    not_after: datetime | None = Field(default=None, description="Refused after this (ends the old one's overlap)")


class SourceAuth(BaseModel):
    """How one configured source (a form, a bot, a mailbox, an importer) proves who it is to the ingest API."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: Channel
    hmac_secret: SecretStr | None = None
    hmac_secrets: tuple[SourceSecret, ...] = Field(
        default=(), description="Rotation: the new and the old secret, each with an id (hmac_secret counts as one)"
    )
    bearer_token: SecretStr | None = None
    signature: Literal[
        "leadpipe",
        "webflow",
        "meta",
        "intercom",
        "viber",
        "typeform",
        "telegram",
        "mailgun",
        "hubspot",
        "twilio",
        "wufoo",
        "calendly",
        "tawk",
        "tally",
        "zoom",
    ] = Field(
        default="leadpipe",
        description="How the HMAC secret signs: leadpipe's own headers, or the scheme of a vendor whose webhooks "
        "cannot send them (pipeline/ingest/signatures.py: Meta/WhatsApp, Viber, Telegram, Typeform, Intercom, Webflow, "
        "Mailgun, HubSpot, Twilio, Wufoo, Calendly, tawk.to, Tally, Zoom)",
    )
    public_url: str | None = Field(
        default=None,
        max_length=2000,
        pattern=r"^https?://\S+$",
        description="The URL the vendor calls, exactly as configured there: HubSpot's and Twilio's signatures cover it",
    )
    verify_token: SecretStr | None = Field(
        default=None,
        description="The verify token set in Meta's dashboard (WhatsApp Cloud API, Messenger): a GET with "
        "hub.mode=subscribe and this hub.verify_token is answered its hub.challenge, so Meta saves the webhook",
    )

    @model_validator(mode="after")
    def _at_most_two_secrets(self) -> SourceAuth:
        ids = [s.id for s in self.hmac_secrets] + (["hmac_secret"] if self.hmac_secret is not None else [])
        if len(ids) > 2:
            raise ValueError("a source has at most two HMAC secrets at once: the current one and the one it replaces")
        if len(set(ids)) != len(ids):
            raise ValueError(f"HMAC secret ids must differ: {ids}")
        if self.signature != "leadpipe" and not ids:
            raise ValueError(f"the {self.signature} signature needs the secret it signs with: set hmac_secret")
        if self.signature in ("hubspot", "twilio") and self.public_url is None:
            raise ValueError(f"the {self.signature} signature covers the URL the vendor calls: set public_url to it")
        return self


class Settings(BaseSettings):
    """Runtime configuration. Embedded defaults run everything on one machine: local Kafka, SQLite, dry-run HubSpot."""

    model_config = SettingsConfigDict(env_prefix="LEADPIPE_", frozen=True, extra="ignore", env_nested_delimiter="__")

    environment: Literal["development", "production", "test"] = "development"
    home: Path = Field(
        default_factory=_default_home, description="Where embedded state lives (SQLite, dry-run logs, dev secrets)."
    )
    cache_dir: Path = Field(default_factory=_default_cache, description="Downloaded Kafka jars and broker data.")

    # Logging
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str | None = Field(
        default=None, description="DEBUG, INFO, WARNING, ...; default: WARNING on a terminal, INFO for machines (JSON)."
    )
    otlp_traces_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces endpoint (e.g. http://otel-collector:4318/v1/traces); unset: no tracing.",
    )

    # Kafka
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="How every client (workers, API, CLI, SDK) talks to the brokers."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="CA bundle (PEM) to verify the brokers; default: the system's trust store."
    )
    kafka_ssl_certfile: Path | None = Field(default=None, description="Client certificate (PEM) for mutual TLS.")
    kafka_ssl_keyfile: Path | None = Field(default=None, description="Its private key (PEM, not encrypted).")
    kafka_version: str = "4.1.1"
    kafka_log4j_version: str = "2.24.3"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    topic_prefix: str = Field(
        default="", description="Prepended to every topic name; lets tests and tenants share a cluster."
    )
    topic_partitions: int | None = Field(
        default=None, ge=1, description="Override every topic's partition count (small local brokers, tests)."
    )
    topic_replication_factor: int | None = Field(
        default=None, ge=1, description="Override every topic's replication factor; default: capped at broker count."
    )
    topics_file: Path | None = Field(default=None, description="topics.yaml; default: the one at the repository root.")

    gc_gen0_threshold: int = Field(
        default=50_000,
        ge=0,
        description="Allocations between collections of the youngest generation in the worker and API processes "
        "(with Python's default 700 the processing step ran 1.09-1.18x slower, bench/processing_step.py); what "
        "start-up allocated is frozen out of the collector's scans. 0 leaves Python's collector as it is.",
    )

    # Worker (faust)
    app_id: str = "leadpipe"
    worker_web_port: int = 6066
    processing_guarantee: Literal["exactly_once", "at_least_once"] = "exactly_once"
    batch_size: int = 500
    batch_timeout_s: float = Field(
        default=0.2,
        gt=0,
        description="The sink batches' linger: a batch closes this long after its first event, when batch_size events "
        "are in, or once no event came for batch_quiet_s.",
    )
    batch_quiet_s: float = Field(
        default=0.02,
        gt=0,
        description="A sink batch closes once no event came for this long: its input comes in bursts, one per commit "
        "of the processing worker, and lingering on after a burst only delayed its leads.",
    )
    # Stream processing (pipeline/agents/app.py)
    worker_web_enabled: bool = Field(default=False, description="Serve faust's web views on worker_web_port.")
    console_metrics_urls: list[str] = Field(
        default_factory=list,
        description="The workers' /metrics addresses (each replica's, worker_web_enabled) the console's charts of spam "
        'share per channel and sink health read, as JSON: ["http://worker-0:6066/metrics"]; "dns+http://host:6066/'
        'metrics" stands for every address the host resolves to (a headless Service: each pod)',
    )
    worker_instance_id: str | None = Field(
        default=None, description="Static group membership: a restarted worker takes its place without a rebalance."
    )
    worker_session_timeout_s: float = Field(default=10.0, ge=6.0, description="Brokers refuse less than 6 s.")
    worker_commit_interval_s: float = Field(
        default=0.25,
        gt=0,
        description="Transaction length under exactly_once: the floor of end-to-end latency (0.25 s against 0.5 s: "
        "a lead's p99 to the CRM 0.73-0.81 s against 0.90-0.93 s at 100/s, bench/speed_to_lead.py; 315-343 against "
        "310 us of worker CPU per event, bench/processing.py).",
    )
    # Worker health (pipeline/agents/health.py: /readyz, /livez and the leadpipe_worker_not_ready/_not_live gauges)
    worker_ready_uncommitted_max_s: float = Field(
        default=120.0,
        gt=0,
        description="Not ready when an assigned partition's committed offset has not moved for this long while "
        "records wait beyond it (handed to an agent, or arrived since it last moved).",
    )
    worker_ready_sink_pause_max_s: float = Field(
        default=180.0,
        gt=0,
        description="Not ready when a sink has paused (backpressure, rate limit, retryable records) for this long "
        "without finishing its batch. A paused key store (database) is not ready at once.",
    )
    worker_live_loop_stall_s: float = Field(
        default=30.0,
        gt=0,
        description="Not live when the event loop's 1-second heartbeat is this late (a blocked loop: a restart "
        "fixes it). Dependency outages never fail liveness.",
    )

    # Spam engine (rspamd + Redis, pipeline/spam): the normal worker scores, the controller learns
    spam_engine_enabled: bool = Field(
        default=True,
        description="Ask the spam engine and leadpipe's classifier (its counts are in the engine's Redis). Off: the "
        "policy's rules alone. On with the engine down: events wait or go to review (policy spam.engine).",
    )
    spam_engine_url: str = Field(default="http://127.0.0.1:11433", description="rspamd's normal worker (/checkv2).")
    spam_engine_controller_url: str = Field(
        default="http://127.0.0.1:11434", description="rspamd's controller worker (/learnspam, /learnham, /stat)."
    )
    spam_engine_redis_host: str = Field(default="127.0.0.1", description="The engine's Redis (classifier counts).")
    spam_engine_redis_port: int = Field(default=16379, description="The Redis of `leadpipe spam engine up`.")
    spam_classifier_reload_s: float = Field(
        default=30.0, gt=0, description="How often a worker reads the classifier's counts again (others learn too)."
    )
    spam_engine_timeout_s: float = Field(default=2.0, gt=0, description="Time budget of one scoring batch.")
    spam_engine_concurrency: int = Field(default=8, ge=1, description="Requests in flight to the engine at once.")
    spam_engine_sa_rules: bool = Field(
        default=False,
        description="Load SpamAssassin's stock rules into rspamd (docs/processing.md: a few more hits, ~6x slower).",
    )

    # Policy
    policy_file: Path | None = Field(default=None, description="The policy data file; default: the packaged one.")

    # CRM database
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite under home.")

    # Secrets for identity and crypto-shredding
    subject_key_pepper: SecretStr | None = None
    key_encryption_key: SecretStr | None = Field(
        default=None, description="Base64 of 32 bytes; wraps per-subject keys."
    )

    # Ingest API
    ingest_host: str = "127.0.0.1"
    ingest_port: int = 8080
    ingest_max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest body the API reads; a channel whose topics take less (topics.yaml max.message.bytes, "
        "the sealed record being a third larger) gets that smaller limit",
    )
    ingest_signature_tolerance_s: int = 300
    ingest_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Longest an ingest request waits for the key store and the broker before 503 (and the API's "
        "producer's message.timeout.ms, so a record refused is never delivered later)",
    )
    ingest_retry_after_s: int = Field(default=5, ge=1, description="Retry-After of a 503 (key store or broker down)")
    ingest_trip_gap_s: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Least time between two of the API's key-store trips: under load, requests arriving meanwhile "
        "share the next trip (fewer trips, less CPU per request) at up to this much latency; an idle API's request "
        "never waits for it",
    )
    api_workers: int = Field(default=1, ge=1, le=64, description="`leadpipe serve` processes sharing the ports")
    admin_host: str = Field(default="127.0.0.1", description="Listen address of the admin port")
    admin_port: int | None = Field(
        default=8081,
        description="Port of /metrics, /openapi.json and /docs (and /healthz, /readyz); None: not served. They are "
        "not on the API port, which faces the internet",
    )
    api_public_docs: bool = Field(
        default=False, description="Also serve /openapi.json and /docs on the API port (a public API reference)"
    )
    http_max_header_bytes: int = Field(
        default=32_768, ge=1024, description="Request line and header block; larger is refused 431 before parsing"
    )
    http_max_header_fields: int = Field(default=100, ge=8, description="Header fields per request; more is 431")
    http_header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="From a connection (or the end of the previous answer on it) to its request's complete head; "
        "later is 408 and closed (closed without an answer when nothing came)",
    )
    http_body_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="From a request's complete head to its complete body; later is 408"
    )
    http_max_connections: int = Field(
        default=2048,
        ge=16,
        description="Open connections (and requests in progress) per API process; a request beyond them is 503",
    )
    sources: dict[str, SourceAuth] = Field(default_factory=dict, description="source id -> channel and credentials")
    # The shared per-role tokens of old: accepted only with legacy_role_tokens=true (pipeline/identity/authenticator.py)
    dpo_token: SecretStr | None = None
    reviewer_token: SecretStr | None = None
    sales_token: SecretStr | None = None

    # Identity and access (pipeline/identity)
    legacy_role_tokens: bool = Field(
        default=False,
        description="Accept the shared per-role tokens (LEADPIPE_DPO_TOKEN, _REVIEWER_TOKEN, _SALES_TOKEN) as well as "
        "personal credentials; logged as a warning at start and on every use. For migration only.",
    )
    api_key_pepper: SecretStr | None = Field(
        default=None, description="Server secret in every API key hash; required in production."
    )
    api_key_ttl_days: int = Field(default=90, ge=1, le=3650, description="Default lifetime of a new API key")
    api_key_last_used_interval_s: float = Field(
        default=300.0, gt=0, description="last_used_at is written at most this often per key and process"
    )
    auth_failure_limit: int = Field(
        default=10, ge=1, description="Failed logins or key checks per client address within the window"
    )
    auth_failure_limit_principal: int = Field(
        default=30, ge=1, description="Failed checks per principal (key id, user name) within the window"
    )
    auth_failure_window_s: float = Field(default=300.0, gt=0)
    auth_lockout_s: float = Field(default=300.0, gt=0, description="How long a limited address or principal waits")
    oidc_issuer: str | None = Field(
        default=None, description="OpenID Connect issuer URL (single sign-on); discovery at /.well-known/..."
    )
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = Field(default=None, description="None for a public client (PKCE only)")
    oidc_audience: str | None = Field(
        default=None,
        description="Expected 'aud' of bearer access tokens; must differ from the client id so an ID token is not "
        "accepted as an access token",
    )
    oidc_scopes: tuple[str, ...] = ("openid", "profile", "email")
    oidc_groups_claim: str = Field(
        default="groups", description="Claim holding the person's groups; dotted for nested claims (ext.groups)"
    )
    oidc_group_roles: dict[str, tuple[Role, ...]] = Field(
        default_factory=dict, description='Provider group -> leadpipe roles, e.g. {"privacy-office": ["dpo"]}'
    )
    oidc_algorithms: tuple[str, ...] = Field(
        default=("RS256", "ES256", "PS256", "EdDSA"), description="Accepted signature algorithms (never 'none' or HS*)"
    )
    oidc_leeway_s: float = Field(default=30.0, ge=0, le=300, description="Clock skew allowed on exp, iat, nbf")
    oidc_jwks_max_age_s: float = Field(default=3600.0, gt=0, description="The provider's keys are fetched again after")
    oidc_jwks_min_refetch_s: float = Field(
        default=30.0, ge=0, description="An unknown key id refetches the keys at most this often (rotation)"
    )
    oidc_http_timeout_s: float = Field(default=5.0, gt=0)
    public_url: str | None = Field(
        default=None,
        description="The API's address as browsers reach it (https://leadpipe.example.com): the sign-in callback is "
        "<public_url>/auth/callback, and the only origin a signed-in browser may send changes from; default: the "
        "address the request was made to",
    )
    session_secret: SecretStr | None = Field(
        default=None, description="Server secret that encrypts session cookies and derives CSRF tokens"
    )
    session_ttl_s: float = Field(default=8 * 3600.0, gt=0, le=7 * 86400, description="A browser session's lifetime")
    session_cookie_secure: bool = Field(
        default=True,
        description="Session cookies only over HTTPS (and named __Host-...); false only for http://localhost work",
    )
    identity_audit_interval_s: float = Field(
        default=5.0, gt=0, description="How often the rights worker publishes identity changes on the audit topic"
    )

    # HubSpot
    hubspot_access_token: SecretStr | None = None
    hubspot_base_url: str = "https://api.hubapi.com"
    hubspot_rate_limit_requests: int = 190
    hubspot_rate_limit_window_s: float = 10.0
    hubspot_search_rate_per_s: float = 4.0
    hubspot_timeout_s: float = 10.0
    hubspot_max_retries: int = 8
    hubspot_dry_run_file: Path | None = None

    # Sinks (pipeline/sinks, pipeline/agents/sinks.py)
    sink_agents: tuple[Literal["crm", "hubspot"], ...] = Field(
        default=("crm", "hubspot"), description="Which sink agents this worker runs (a stuck HubSpot can get its own)"
    )
    sink_retry_max_s: float = Field(default=60.0, gt=0, description="Longest pause of a sink under backpressure")
    hubspot_batch_size: int = Field(default=100, ge=1, le=100, description="Inputs per batch call (HubSpot max 100)")
    hubspot_backoff_base_s: float = Field(default=0.5, gt=0, description="First retry delay without Retry-After")
    hubspot_backoff_max_s: float = Field(default=30.0, gt=0)
    hubspot_rate_limit_margin_s: float = Field(
        default=0.1, ge=0, description="Added to the rate window so network jitter cannot push calls over budget"
    )

    # Data-subject rights (pipeline/rights)
    rights_exports_dir: Path | None = Field(
        default=None, description="Where exports are written; default: home/exports"
    )
    rights_export_max_age_h: float = Field(
        default=168.0,
        gt=0,
        description="Exports are deleted this long after they were written (by the rights worker's sweep) and the "
        "download refuses them from then on: an export holds everything about a person and is meant to be delivered",
    )
    rights_export_font: Path | None = Field(
        default=None, description="A TTF font for access PDFs; default: DejaVu Sans"
    )
    rights_max_attempts: int = Field(default=5, ge=1, description="Tries per sink and request before it is FAILED")
    rights_retry_base_s: float = Field(default=0.5, gt=0, description="First retry delay; doubles per attempt")
    rights_retry_interval_s: float = Field(default=60.0, gt=0, description="How often failed requests are retried")
    retention_sweep_interval_s: float = Field(default=3600.0, gt=0, description="How often the retention sweep runs")
    rights_hubspot_consent_subscriptions: tuple[str, ...] = Field(
        default=(), description="HubSpot subscription type ids whose e-mails rest on consent (9.8)"
    )

    @model_validator(mode="after")
    def _kafka_security_complete(self) -> Settings:
        """SASL needs a user and a password; a client certificate needs its key: say so at start, not on connect."""
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"kafka_security_protocol={self.kafka_security_protocol} needs kafka_sasl_username and "
                "kafka_sasl_password (LEADPIPE_KAFKA_SASL_USERNAME, LEADPIPE_KAFKA_SASL_PASSWORD)"
            )
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError("kafka_ssl_certfile and kafka_ssl_keyfile go together (mutual TLS)")
        return self

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        """Single sign-on needs a client id and an audience distinct from it (an ID token is not an access token)."""
        if self.oidc_issuer is None:
            return self
        if not self.oidc_client_id or not self.oidc_audience:
            raise ValueError("oidc_issuer needs oidc_client_id and oidc_audience (LEADPIPE_OIDC_CLIENT_ID, _AUDIENCE)")
        if self.oidc_audience == self.oidc_client_id:
            raise ValueError("oidc_audience must differ from oidc_client_id: ID tokens carry the client id as audience")
        if any(Role.PRODUCER in roles for roles in self.oidc_group_roles.values()):
            raise ValueError("oidc_group_roles cannot grant producer: sources authenticate with their own keys")
        if bad := [a for a in self.oidc_algorithms if a.lower() == "none" or a.upper().startswith("HS")]:
            raise ValueError(f"oidc_algorithms may not include {bad}: only the provider's public keys are trusted")
        return self

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _servers_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("kafka_bootstrap_servers must name at least one host:port")
        return value.strip()

    # ---- derived values -------------------------------------------------------------------------------

    def topic(self, name: str) -> str:
        """The real topic name for a logical name in topics.yaml."""
        return f"{self.topic_prefix}{name}"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'crm.sqlite3'}"

    @property
    def resolved_dry_run_file(self) -> Path:
        return self.hubspot_dry_run_file or self.home / "hubspot-dry-run.jsonl"

    @property
    def resolved_exports_dir(self) -> Path:
        return self.rights_exports_dir or self.home / "exports"

    @property
    def hubspot_dry_run(self) -> bool:
        return self.hubspot_access_token is None

    def pepper_bytes(self) -> bytes:
        return _secret_or_dev_default(self, self.subject_key_pepper, "subject-key-pepper")

    def api_key_pepper_bytes(self) -> bytes:
        return _secret_or_dev_default(self, self.api_key_pepper, "api-key-pepper")

    def session_secret_bytes(self) -> bytes:
        return _secret_or_dev_default(self, self.session_secret, "session-secret")

    def kek_bytes(self) -> bytes:
        raw = _secret_or_dev_default(self, self.key_encryption_key, "key-encryption-key")
        key = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
        if len(key) != 32:
            raise SettingError("LEADPIPE_KEY_ENCRYPTION_KEY must be the base64 of exactly 32 bytes")
        return key


class SettingError(ValueError):
    """A setting is missing or unusable where it is read (a secret production requires): the message names it."""


def _secret_or_dev_default(settings: Settings, value: SecretStr | None, name: str) -> bytes:
    """A configured secret, or in development a random one kept under ``home`` so restarts agree.

    Production refuses to start without the real secret: a generated one would silently change every subject key.
    """
    if value is not None:
        return value.get_secret_value().encode()
    if settings.environment == "production":
        raise SettingError(f"LEADPIPE_{name.upper().replace('-', '_')} must be set in production")
    path = settings.home / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        tmp = path.with_name(f"{name}.{secrets.token_hex(8)}.tmp")
        tmp.write_bytes(base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"="))
        tmp.chmod(0o600)
        try:  # link, not rename: when two processes race, the first secret wins and both read it
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_bytes().strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, read once per process (the CLI's entry point calls this)."""
    return Settings()


class _ExplicitSettings(Settings):
    """Settings from the given values only (no environment): for tests and embedding."""

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], *sources: Any, **kw: Any) -> tuple[Any, ...]:
        init_settings = kw.get("init_settings", sources[0] if sources else None)
        return (init_settings,)


def explicit_settings(**values: Any) -> Settings:
    """Build Settings from explicit values, ignoring LEADPIPE_* variables of the calling environment."""
    return _ExplicitSettings(**values)

"""One validated settings object for the whole service.

Values come from environment variables (and an optional `.env` in the working directory).
It sits at the bottom of the dependency graph so every layer can read it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError


class Price(BaseModel):
    """US dollars per million tokens. Cached input tokens are a part of the prompt tokens a backend reports
    (OpenAI's `prompt_tokens_details.cached_tokens`), priced at `cached_input` and never counted twice."""

    input: float = Field(ge=0)
    cached_input: float | None = Field(None, ge=0, description="unset: the input price")
    output: float = Field(ge=0)


# Published list prices (USD per 1M tokens) of common OpenAI models, checked 2026-12; MENTOR_PRICES replaces
# or adds entries. Keys are model names, or a provider's whole name ("openai-compatible:my-model").
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(input=0.15, cached_input=0.075, output=0.60),
    "gpt-4o": Price(input=2.50, cached_input=1.25, output=10.00),
    "gpt-4.1": Price(input=2.00, cached_input=0.50, output=8.00),
    "gpt-4.1-mini": Price(input=0.40, cached_input=0.10, output=1.60),
    "gpt-4.1-nano": Price(input=0.10, cached_input=0.025, output=0.40),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    mentor_home: Path = Field(
        default_factory=lambda: Path(user_data_dir("mentor", appauthor=False)),
        description="Directory holding all state (embedded database, caches). Empty = fresh instance.",
    )
    database_url: str | None = Field(
        default=None, description="PostgreSQL >= 15 with pgvector; unset = embedded PostgreSQL in MENTOR_HOME."
    )
    db_service_password: str | None = Field(
        default=None, alias="MENTOR_DB_SERVICE_PASSWORD", min_length=16,
        description="the mentor_service role's password; unset = generated once into MENTOR_HOME")
    db_pool_max: int = Field(default=16, ge=1, le=256, alias="MENTOR_DB_POOL_MAX")
    # connections kept open; unset = the whole pool for a serving worker (a burst must not wait for new
    # backends to start), one for a one-off command
    db_pool_min: int | None = Field(default=None, ge=1, le=256, alias="MENTOR_DB_POOL_MIN")
    # the event writer begins a transaction at most this often; batches gather what came meanwhile.
    # 16 ms against 8: a lower burst first-token p95 on one worker and on two, fewer transactions; 500
    # steady streams' added inter-token delay p99 still ~19 ms (README, Concurrency)
    event_commit_ms: float = Field(default=16.0, ge=0, le=200, alias="MENTOR_EVENT_COMMIT_MS")
    # turns gathering their evidence at once, per worker; more wait, first come first served (server/turns.py)
    # 96 for one worker; `mentor serve --workers N` gives each worker 64 unless this is set (README, Concurrency)
    turn_setup_slots: int = Field(default=96, ge=1, le=4096, alias="MENTOR_TURN_SETUP_SLOTS")
    # a worker whose lease (renewed from its event loop every 2 s) is this old is fenced off by the others:
    # its answers closed as interrupted, its sessions ended, its later writes refused (store/workers.py)
    worker_lease_s: float = Field(default=15.0, ge=4, le=3600, alias="MENTOR_WORKER_LEASE_S")

    # all-MiniLM-L6-v2 reads at most 256 word-pieces; 200 cl100k tokens (header included) stays inside it.
    chunk_tokens: int = Field(default=200, ge=64, le=2000, alias="MENTOR_CHUNK_TOKENS")
    chunk_overlap: int = Field(default=30, ge=0, le=500, alias="MENTOR_CHUNK_OVERLAP")
    embed_batch: int = Field(default=64, ge=1, le=4096, alias="MENTOR_EMBED_BATCH")

    llm_backend: Literal["auto", "openai", "composer", "local"] = Field(
        default="auto", alias="MENTOR_LLM",
        description="auto: OpenAI-compatible if configured, else the grounded composer; local: SmolLM2 (opt-in)",
    )
    grounding: Literal["flag", "strict"] | None = Field(
        default=None, alias="MENTOR_GROUNDING",
        description="flag: report unsupported figures; strict: replace such answers by the composer's; "
                    "unset: each persona's own setting (support is strict)",
    )
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    mentor_model: str = Field(default="gpt-4o-mini", min_length=1)
    llm_http: Literal["aiohttp", "httpx"] = Field(
        default="aiohttp", alias="MENTOR_LLM_HTTP",
        description="HTTP path for the model's stream: aiohttp straight (~23 us of CPU a streamed chunk, the "
                    "request included) or the openai client over httpx (~58-78 us; what respx, the tests' HTTP "
                    "double, intercepts); benchmarks/sse_parse_bench.py --http")
    llm_timeout_s: float = Field(default=60.0, gt=0, le=3600, alias="MENTOR_LLM_TIMEOUT")
    llm_max_retries: int = Field(default=3, ge=0, le=10, alias="MENTOR_LLM_MAX_RETRIES")

    jwt_secret: str | None = Field(default=None, alias="MENTOR_JWT_SECRET", min_length=16,
                                   description="HS256 secret; unset = generated once into MENTOR_HOME/jwt_secret")
    jwt_ttl_s: int = Field(default=12 * 3600, ge=60, le=30 * 86400, alias="MENTOR_JWT_TTL")
    visitor_tickets_per_address: int = Field(default=10, ge=1, le=1_000_000, alias="MENTOR_VISITOR_TICKETS_PER_ADDRESS",
                                             description="new tickets an hour from anonymous visitors of one address")
    visitor_tickets_per_site: int = Field(default=100, ge=1, le=1_000_000, alias="MENTOR_VISITOR_TICKETS_PER_SITE",
                                          description="new tickets an hour from anonymous visitors of one site")
    site_token_max_s: int = Field(default=24 * 3600, ge=60, le=30 * 86400, alias="MENTOR_SITE_TOKEN_MAX_S",
                                  description="the longest a site-signed user token may be valid (exp - now)")
    demo: bool = Field(default=False, alias="MENTOR_DEMO",
                       description="demo mode: anyone may sign in as a seeded demo user (/api/demo-login, the chat "
                                   "page's picker) and /widget/demo is served; off unless asked for")
    public_url: str | None = Field(default=None, alias="MENTOR_PUBLIC_URL",
                                   description="the origin browsers use for this service (the demo widget's site)")
    metrics_token: str | None = Field(default=None, alias="MENTOR_METRICS_TOKEN", min_length=16,
                                      description="if set, /metrics needs Authorization: Bearer <this token>")
    # proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or CIDRs, comma-separated):
    # the balancer's address(es). Unset = none: the peer's own address is the client's, whatever it sends.
    trusted_proxies: str = Field(default="", alias="MENTOR_TRUSTED_PROXIES")
    max_message_chars: int = Field(default=4000, ge=100, le=100_000, alias="MENTOR_MAX_MESSAGE_CHARS")
    max_frame_bytes: int = Field(default=32_768, ge=1024, le=1_048_576, alias="MENTOR_MAX_FRAME_BYTES")
    user_messages_per_minute: int = Field(default=20, ge=1, le=10_000, alias="MENTOR_USER_RATE")
    site_messages_per_minute: int = Field(default=120, ge=1, le=100_000, alias="MENTOR_SITE_RATE")
    visitor_messages_per_minute: int = Field(default=10, ge=1, le=10_000, alias="MENTOR_VISITOR_RATE")
    address_messages_per_minute: int = Field(default=30, ge=1, le=100_000, alias="MENTOR_ADDRESS_RATE")
    max_body_bytes: int = Field(default=262_144, ge=1024, le=64 * 1_048_576, alias="MENTOR_MAX_BODY_BYTES")
    max_messages_per_request: int = Field(default=50, ge=1, le=10_000, alias="MENTOR_MAX_MESSAGES")
    max_turns_per_connection: int = Field(default=1, ge=1, le=16, alias="MENTOR_MAX_TURNS_PER_CONNECTION")
    conversation_token_budget: int = Field(default=200_000, ge=1000, le=10_000_000, alias="MENTOR_CONVERSATION_TOKENS")
    # the operator's cost figures (GET /api/admin/stats): JSON, e.g. {"my-model": {"input": 0.5, "output": 1.5,
    # "cached_input": 0.25}}, merged over DEFAULT_PRICES; the offline composer and the local model cost 0
    prices: dict[str, Price] = Field(default_factory=dict, alias="MENTOR_PRICES")
    # knowledge management (issue 27): uploads, and imports from websites (retrieval/fetch.py refuses
    # loopback, private, link-local and metadata addresses unless listed here: hosts, addresses or CIDRs)
    upload_max_bytes: int = Field(default=20 * 1_048_576, ge=1024, le=1024 * 1_048_576, alias="MENTOR_UPLOAD_MAX_BYTES")
    import_allow: str = Field(default="", alias="MENTOR_IMPORT_ALLOW")
    import_max_bytes: int = Field(default=10 * 1_048_576, ge=1024, le=1024 * 1_048_576, alias="MENTOR_IMPORT_MAX_BYTES")
    import_max_pages: int = Field(default=1000, ge=1, le=1_000_000, alias="MENTOR_IMPORT_MAX_PAGES")
    import_timeout_s: float = Field(default=20.0, gt=0, le=600, alias="MENTOR_IMPORT_TIMEOUT")
    import_max_redirects: int = Field(default=5, ge=0, le=20, alias="MENTOR_IMPORT_MAX_REDIRECTS")
    sync_poll_s: float = Field(default=60.0, ge=1, le=86400, alias="MENTOR_SYNC_POLL_S")

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// or postgres://")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        import ipaddress

        for item in (p.strip() for p in value.split(",")):
            if not item or item == "*":
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an address or CIDR (e.g. 10.0.0.5, 10.0.0.0/16, *)") from None
        return value.strip()

    @field_validator("import_allow")
    @classmethod
    def _check_allow(cls, value: str) -> str:
        import ipaddress
        import re

        for item in (p.strip() for p in value.split(",")):
            if not item:
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", item):
                    raise ValueError(f"{item!r} is not a host name, address or CIDR") from None
        return value.strip()

    @field_validator("db_pool_min")
    @classmethod
    def _min_within_max(cls, value: int | None, info) -> int | None:
        most = info.data.get("db_pool_max", 16)
        if value is not None and value > most:
            raise ValueError(f"must not exceed MENTOR_DB_POOL_MAX ({most})")
        return value

    @field_validator("mentor_home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, value: int, info) -> int:
        size = info.data.get("chunk_tokens", 200)
        if value >= size:
            raise ValueError(f"must be smaller than MENTOR_CHUNK_TOKENS ({size})")
        return value

    @property
    def pgdata(self) -> Path:
        return self.mentor_home / "pgdata"


def load_settings() -> Settings:
    """Build settings, turning validation failures into one readable ConfigError line."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()

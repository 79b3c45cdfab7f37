"""The one Settings object: built once by an entrypoint and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: The one name people read for what happens when no LLM answers at ollama_url (rules read goals): in
#: `spinbot up`'s banner, `spinbot plan`, and a conversation's first answer planned without one.
NO_LLM_MODE = "no-LLM mode"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPINBOT_", extra="ignore")

    # Real parts. Unset Redis/Postgres URLs mean "start a private server" (spinbot up, tests).
    redis_url: str | None = None
    database_url: str | None = None
    ollama_url: str = "http://127.0.0.1:11434"
    ollama_model: str = "qwen2.5:7b-instruct"
    ollama_timeout_s: float = 60.0
    #: a capable model may answer with the compact plan itself (per-service step schemas) instead of the intent
    planner_direct_plans: bool = False
    #: how far a model's reading is trusted over the rules: auto (measured on probes), rules, model
    planner_trust: Literal["auto", "rules", "model"] = "auto"
    #: a planned chat job whose node fails for good goes on as this many continuation graphs at most
    max_replans: int = Field(default=1, ge=0, le=5)
    # The largest context window (num_ctx, tokens) a call may ask for; each call asks for what its prompt needs.
    ollama_num_ctx_max: int = Field(default=8192, ge=512)
    # The embedded model (`spinbot up` when no Ollama answers at ollama_url): on when its packages are installed.
    embedded_model: bool = True
    #: CPU threads of the embedded model server; 1: on a shared 2-core machine two collapse under load
    model_threads: int = Field(default=1, ge=1)
    s3_endpoint: str | None = None
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_bucket: str = "spinbot"
    s3_secure: bool = False
    comfyui_url: str | None = None
    # An F5-TTS server: /v1/audio/speech (OpenAI speech API), and /api (ref_audio + ref_text, as in
    # jianchang512/f5-tts-api) to clone a reference voice; unset: eSpeak NG.
    tts_url: str | None = None
    tts_model: str = "f5-tts"

    # API.
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    # API limits (413/429) and chat behaviour.
    max_body_mb: float = 32.0
    max_attachment_mb: float = 20.0
    max_graph_nodes: int = 100
    #: nodes that may use one node's outputs (the evaluator's fan-out limit for API and chat jobs)
    max_fan_out: int = Field(default=16, ge=1)
    max_jobs_per_key: int = 4
    max_streams_per_key: int = 64
    #: the API following a chat turn's job renews its claim on the turn every third of this; a claim that
    #: lapses (its API died) is answered by any API when the job ends, within about this long
    turn_lease_s: float = Field(default=15.0, gt=0)
    chat_job_limit_s: float = 240.0  # OpenAI endpoint: past this, answer with a link to the job page
    sse_ping_s: float = 15.0
    openwebui_status: bool = False  # send Open WebUI status events even without its X-OpenWebUI-* headers
    #: a /v1 answer whose client leaves before its job ends (Open WebUI's Stop) cancels the job; false: it runs on
    v1_cancel_on_disconnect: bool = True
    link_secret: SecretStr | None = None  # signs artifact and job-page links; unset: a secret file in data_dir
    link_ttl_s: int = 7 * 24 * 3600
    # Media inputs and HTTP conventions.
    #: pictures with more pixels (width x height) are refused at upload from their header, before decoding
    #: (413); at most 170: Pillow itself refuses past about 179 megapixels
    max_image_megapixels: float = Field(default=50.0, gt=0, le=170)
    #: origins whose browser code may call the API (CORS, e.g. a browser-side OpenAI client); `*` any; unset: none
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # `spinbot chat`: where the API is and which key to use (default: http://host:port, first API key).
    api_url: str | None = None
    api_key: SecretStr | None = None

    data_dir: Path = Path(".spinbot")

    # Executors.
    concurrency: int = 8
    gpu_slots: int = 1
    gpu_memory_mb: int | None = None
    #: a claim idle this long is taken over (autoclaim runs every quarter of it): an orphaned node is
    #: reclaimed within about claim_idle_ms + claim_idle_ms / 4 + 1 s of its executor's death
    claim_idle_ms: int = 6_000
    heartbeat_s: float = 3.0
    max_deliveries: int = 5
    #: every executor checks this often that each unfinished job's stream entry still exists, and
    #: re-issues the jobs whose entry vanished (one executor sweeps per interval)
    reconcile_s: float = Field(default=10.0, gt=0)
    #: a running job's full graph goes to Postgres every max(snapshot_every, nodes) transitions (and at its end)
    snapshot_every: int = Field(default=50, ge=1)
    #: reuse a completed node's outputs for a node with the same service, version, params and input digests
    #: (spinbot/nodecache.py; per API key; services with side effects are never cached)
    node_cache: bool = True
    metrics_port: int | None = None

    # Infrastructure faults (docs/operations.md, "When Redis or Postgres fail").
    #: production mode: refuse to start on an unsafe setup (a Redis whose maxmemory-policy may evict keys);
    #: off, the same finding is a loud warning at start and in /health
    production: bool = False
    #: Postgres: a statement may run this long (statement_timeout; the client gives up 2 s later)
    pg_statement_timeout_s: float = Field(default=15.0, gt=0)
    #: Postgres: a statement may wait this long for a lock (lock_timeout), e.g. on a table being altered
    pg_lock_timeout_s: float = Field(default=3.0, gt=0)
    #: Postgres: a request may wait this long for a free connection of its process' pool (then 503 + Retry-After)
    pg_acquire_timeout_s: float = Field(default=5.0, gt=0)
    #: Postgres: the API process' pool size (connections)
    pg_pool_size: int = Field(default=20, ge=1)

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

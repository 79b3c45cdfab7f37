"""One chat turn: remember the message, plan, show the plan, run the job, follow it, answer.

A turn runs as a background task that outlives its HTTP request: a client that disconnects does
not cancel its job (unless the OpenAI endpoint abandons the turn: Open WebUI's Stop), and the
conversation still gets the final answer. Clients read the turn's
events from a queue; the native endpoint sends them as SSE, the OpenAI endpoint as chunks.
Event ids: before the job `0-<n>`, then the job stream's own ids, then `<last job id>/<n>`, so
any id a client saw resumes GET /api/jobs/{id}/events correctly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from conversation import admission
from conversation.answers import (
    REVIEW_ASK,
    answer_for,
    last_job_id,
    plan_summary,
    progress_line,
    running_note,
    shown_graph,
    title_of,
)
from conversation.goals import asked_again, history_of, plan_goal
from conversation.services import Services
from conversation.turns import OPEN
from evaluator import Verdict
from planner.cues import JOB_STATUS
from planner.replan import continuation
from spinbot.capabilities import live_manifest
from spinbot.errors import Problem, SpinbotError, outage, unavailable
from spinbot.graph import Graph
from spinbot.llm import reachable
from spinbot.queue import TERMINAL_JOB, Job, is_terminal
from spinbot.text import clean, clean_value

log = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class ChatEvent:
    type: str
    data: dict[str, Any]
    id: str


@dataclass
class TurnRequest:
    owner: str
    message: str
    conversation_id: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    auto_run: bool = True
    plan_only: bool = False
    wait_s: float | None = None  # stop following the job after this long (it keeps running)
    history: list[dict[str, Any]] | None = None  # given by the caller (OpenAI endpoint) instead of the store
    base_url: str = ""
    profile: str | None = None  # the id of the profile picked in the composer


@dataclass
class TurnResult:
    conversation_id: str = ""
    job_id: str | None = None
    status: str | None = None
    text: str = ""
    graph: dict[str, Any] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: dict[str, Any] | None = None


class Turn:
    def __init__(self, services: Services, req: TurnRequest) -> None:
        self.services = services
        self.req = req
        self.result = TurnResult()  # conversation_id is set once the conversation is known to be the owner's
        self.queue: asyncio.Queue[ChatEvent | None] = asyncio.Queue()
        self.listening = True
        self._seq = 0
        self._last_job_id: str | None = None
        self._job: Job | None = None  # the job this turn submitted (admission.admit), followed through it
        self._message_id: int | None = None
        self.abandoned = False  # the client left and its job is not wanted any more (OpenAI endpoint's Stop)
        self.finished = False

    # -- events

    def emit(self, type_: str, data: dict[str, Any], event_id: str | None = None) -> None:
        if event_id is None:
            self._seq += 1
            event_id = f"{self._last_job_id}/{self._seq}" if self._last_job_id else f"0-{self._seq}"
        if self.listening:
            self.queue.put_nowait(ChatEvent(type_, data, event_id))

    async def events(self, idle_s: float | None = None) -> AsyncIterator[ChatEvent | None]:
        """What the client sees (None: quiet for idle_s); leaving early detaches the client, the turn goes on."""
        try:
            while True:
                try:
                    async with asyncio.timeout(idle_s):
                        ev = await self.queue.get()
                except TimeoutError:
                    yield None
                    continue
                if ev is None:
                    return
                yield ev
        finally:
            self.listening = False

    def start(self) -> Turn:
        self.services.spawn(self._run(), name=f"chat-turn-{self.req.owner}")
        return self

    def abandon(self) -> None:
        """Its client left before the answer: cancel the job, or never start it (the turn still answers)."""
        if self.finished or self.abandoned:
            return
        self.abandoned = True
        if self._job is not None:
            self.services.spawn(self._cancel(self._job), name=f"chat-cancel-{self._job.id}")

    async def _cancel(self, job: Job) -> None:
        try:
            if await job.cancel():
                log.info("job %s cancelled: its chat client left before the answer", job.id)
        except Exception:
            log.exception("could not cancel job %s after its chat client left", job.id)

    async def _run(self) -> None:
        """The turn, then always an answer and `done`: an error becomes an `error` event and a message."""
        try:
            await self.run()
        except SpinbotError as e:
            self.result.error = {"status": e.status, "code": e.code, "detail": e.message, "hint": e.hint}
            await self._fail(f"I could not do that: {e.message}" + (f" ({e.hint})" if e.hint else ""))
        except Exception as e:  # a turn must always end with done, whatever broke
            if (part := outage(e)) is not None:  # Redis or Postgres down or too busy: try again later
                gone = unavailable(part, e)
                log.warning("chat turn failed: %s (%s: %s)", gone.detail, type(e).__name__, e)
                self.result.error = {"status": gone.status, "code": gone.code, "detail": gone.detail, "hint": gone.hint}
                await self._fail(f"I could not do that now: {gone.detail} ({gone.hint})")
                return
            log.exception("chat turn failed")
            self.result.error = {"code": "internal", "detail": f"{type(e).__name__}: {e}",
                                 "hint": "this is a bug in Spinbot; the server log has the traceback"}
            await self._fail(f"I could not do that: the server failed ({type(e).__name__}); "
                             "the server log has the details.")
        finally:
            self.finished = True
            self.emit("done", {"conversation_id": self.result.conversation_id, "job_id": self.result.job_id,
                               "status": self.result.status, "error": self.result.error})
            self.queue.put_nowait(None)

    async def _fail(self, text: str) -> None:
        """The error event, then the answer that says so; storing it may fail too (the cause may be the store)."""
        assert self.result.error is not None
        self.result.error = clean_value(self.result.error)
        self.emit("error", self.result.error)
        try:
            await self._answer(text)
        except Exception:
            log.exception("could not store the answer to a failed chat turn")

    # -- the turn

    async def run(self) -> None:
        repo = self.services.repo
        req = self.req
        conv = await self._conversation()
        self.emit("conversation", {"id": conv["id"], "title": conv["title"]})
        stored = await repo.messages(conv["id"])
        history, previous = history_of(stored)
        again = False
        if req.history is not None:  # the client's chat is the truth (an edit, another branch): not the stored one
            history, previous = req.history, None
            again = asked_again(stored, history, req.message)
        if previous is None:
            previous = await self._previous_from_history(history)
        await repo.add_message(conv["id"], "user", req.message, attachments=req.attachments)

        if (status := await self._job_status_reply(history)) is not None:
            await self._answer(status)
            return

        result = await plan_goal(self.services, req.message, history=history, previous=previous,
                                 attachments=req.attachments, on_event=self._planning_event(),
                                 owner=req.owner, profile=req.profile, again=again)
        self._count_tokens(result)
        if result.kind == "reply" or result.graph is None:
            await self._answer(result.reply or result.message or "I have nothing to add.")
            return
        graph: Graph = (result.verdict.graph if result.verdict and result.verdict.graph else result.graph)
        evaluation = result.verdict.to_json() | {"graph": None} if result.verdict else None
        self.result.graph = graph.to_json()
        self.emit("plan", {"graph": self.result.graph, "evaluation": evaluation, "attempts": len(result.attempts or []),
                           "fallback": result.fallback, "message": result.message})
        if result.verdict is not None and not result.verdict.ok:
            raise Problem("plan_refused", f"no runnable plan: {result.verdict.summary()}",
                          hint="rephrase the goal, or run a fixed pipeline (GET /api/pipelines)")
        summary = plan_summary(graph, result)
        if req.plan_only or not req.auto_run:
            # Said to a person; how an API client runs a reviewed plan is in docs/api.md.
            how = "" if req.plan_only else REVIEW_ASK
            await self._answer(summary + how, graph=self.result.graph, metadata={"evaluation": evaluation})
            return
        pipeline = graph.metadata.get("pipeline") if result.fallback else None
        await self._run_job(conv["id"], graph, summary, result.verdict, pipeline=pipeline, note=result.message)

    async def _conversation(self) -> dict[str, Any]:
        repo, req = self.services.repo, self.req
        if req.conversation_id:
            conv = await repo.get_conversation(req.conversation_id, req.owner)
            if conv is None:
                raise Problem("not_found", f"conversation {req.conversation_id} does not exist",
                              hint="start a new conversation (leave conversation_id out)")
        else:
            conv = await repo.create_conversation(req.owner, title_of(req.message))
        self.result.conversation_id = conv["id"]
        return conv

    def _planning_event(self) -> Any:
        async def on_event(data: dict[str, Any]) -> None:
            self.emit("planning", _jsonable({k: v for k, v in data.items() if k != "type"}))

        return on_event

    def _count_tokens(self, result: Any) -> None:
        for attempt in result.attempts:
            self.result.prompt_tokens += int(attempt.get("prompt_tokens") or 0)
            self.result.completion_tokens += int(attempt.get("completion_tokens") or 0)

    async def _run_job(self, conv_id: str, graph: Graph, summary: str, verdict: Verdict | None,
                       *, pipeline: str | None, replans: int = 0, note: str = "") -> None:
        """Run the graph as a job (admitted with the `verdict` it was given), follow it, answer; `note` (what
        the planner did or changed) ends the answer."""
        evaluation = verdict.to_json() | {"graph": None} if verdict else None
        services, req = self.services, self.req
        if self.abandoned:
            await self._answer(summary + "\n\nStopped before the job started.")
            return
        # The one call into the queue for the job: it answers with the Job the turn follows and reads the end by.
        job = self._job = (await admission.admit(services, graph, req.owner, pipeline=pipeline, verdict=verdict)).job
        job_id = self.result.job_id = job.id
        self.result.status = "queued"
        if self.abandoned:  # the client left while it was being submitted
            await self._cancel(job)
        # The turn is open until its answer is written, by this process or, if it stops following, any API
        # (conversation/turns.py): what that one needs to write the same answer travels in the message's metadata.
        # Claimed before the message exists: an open message is never without a claim, whenever this dies.
        message_id = await services.repo.new_message_id()
        await services.turns.claim(message_id)
        try:
            await services.repo.add_message(
                conv_id, "assistant", clean(summary + running_note(job_id)), job_id=job_id,
                graph=clean_value(self.result.graph), message_id=message_id,
                metadata=clean_value({"evaluation": evaluation, "turn": OPEN, "base_url": req.base_url,
                                      "note": note}),
            )
            self._message_id = message_id
            await self._follow_and_answer(conv_id, job, replans=replans, note=note)
        finally:
            services.turns.mine.discard(message_id)  # answered (closed), let go, or failed: its claim lapses

    async def _follow_and_answer(self, conv_id: str, job: Job, *, replans: int, note: str) -> None:
        services, req, job_id = self.services, self.req, job.id
        deadline = None if req.wait_s is None else time.monotonic() + req.wait_s
        followed = job.events()
        try:
            while True:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    ev = await asyncio.wait_for(anext(followed), timeout)
                except (StopAsyncIteration, TimeoutError):
                    break
                if ev is None:
                    continue
                self._last_job_id = ev.id
                self.emit(ev.type, ev.data | {"job_id": job_id}, ev.id)
                if ev.type == "job":
                    self.result.status = ev.data.get("status")
                if is_terminal(ev):
                    break
        finally:
            await followed.aclose()
        state = await job.state()
        text = answer_for(state, job_id, req.base_url, services) if state else f"Job `{job_id}` is gone."
        if note:
            text += f"\n\n{note}"
        if state:
            self.result.status = state.status
        if (state is not None and state.status == "failed" and replans < services.settings.max_replans
                and not self.abandoned):
            why = await self._replan(conv_id, state, replans + 1)
            if why is None:
                return  # the continuation answered
            text += f"\n\n{why}"
        await self._answer(text, update=True)

    async def _replan(self, conv_id: str, state: Any, version: int) -> str | None:
        """A failed planned job goes on as a new graph version that reuses what ran; None when it did.

        Returns the sentence that says why it cannot go on otherwise.
        """
        services = self.services
        manifest = await live_manifest(services.redis)
        llm_ok = await reachable(services.settings) is None
        cont = continuation(state.graph, manifest, llm=llm_ok, version=version)
        self.emit("planning", {"stage": "replanning", "attempt": version, "message": cont.message,
                               "failed_job": state.id})
        if cont.graph is None:
            return f"Replanning: {cont.message}"
        cont.graph.metadata["replan"]["of"] = state.id
        verdict = await admission.evaluate(services, cont.graph, self.req.owner)
        if not verdict.ok or verdict.graph is None:
            return f"Replanning: {cont.message} But the new plan was refused: {verdict.summary()}."
        graph = verdict.graph
        self.result.graph = graph.to_json()
        evaluation = verdict.to_json() | {"graph": None}
        self.emit("plan", {"graph": self.result.graph, "evaluation": evaluation, "attempts": 0, "fallback": False,
                           "message": cont.message, "replan": version})
        await self._answer(f"Job `{state.id}` failed. {cont.message}", update=True)
        summary = f"Replan {version} of job `{state.id}`: {cont.message}"
        await self._run_job(conv_id, graph, summary, verdict, pipeline=None, replans=version, note=cont.message)
        return None

    async def _previous_from_history(self, history: list[dict[str, Any]]) -> dict[str, Any] | None:
        """A stateless client's last plan: the job its answer links to, or the graph it showed."""
        job_id = last_job_id(history)
        if job_id is not None:
            state = await self.services.queue.get(job_id)
            if state is not None and state.owner == self.req.owner:
                return state.graph
            row = await self.services.store.get_job(job_id, self.req.owner)
            if row is not None:
                return dict(row["graph"])
        for m in reversed(history):
            if m.get("role") == "assistant" and (graph := shown_graph(str(m.get("content", "")))) is not None:
                return graph
        return None

    async def _job_status_reply(self, history: list[dict[str, Any]]) -> str | None:
        """A question about this chat's last job is answered from its live state, without planning."""
        if not JOB_STATUS.search(self.req.message):
            return None
        job_id = last_job_id(history)
        if job_id is None:
            return None
        state = await self.services.queue.get(job_id)
        if state is None or state.owner != self.req.owner:
            return None
        self.result.job_id, self.result.status = job_id, state.status
        if state.terminal:
            return answer_for(state, job_id, self.req.base_url, self.services)
        return progress_line(state, self.req.base_url, self.services)

    async def _answer(self, text: str, *, update: bool = False, graph: dict[str, Any] | None = None,
                      metadata: dict[str, Any] | None = None) -> None:
        # Answers quote model and task output: cleaned here, they can always be shown and stored.
        text, graph, metadata = clean(text), clean_value(graph), clean_value(metadata)
        self.result.text = text
        self.emit("message", {"delta": text})
        if not self.result.conversation_id:
            return
        if update and self._message_id is not None:
            turns = self.services.turns
            if self.result.status in TERMINAL_JOB:  # the job ended: the turn's answer, written once
                await self.services.repo.close_turn(self._message_id, text, self.result.status)
                await turns.closed(self._message_id)
            else:  # stopped following a job that runs on (or is gone): whichever API sees its end answers
                await self.services.repo.update_message(self._message_id, text, metadata={"status": self.result.status})
                await turns.let_go(self._message_id)
        else:
            await self.services.repo.add_message(self.result.conversation_id, "assistant", text,
                                                 job_id=self.result.job_id, graph=graph, metadata=metadata)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)

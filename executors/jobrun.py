"""JobRun: one claimed stream entry, its job's graph run as far as this plane can take it.

A thin I/O shell around the pure state machine (spinbot.graphstate.GraphState): it loads the graph
(from its cache, the hand-off deltas, or the record), starts the ready nodes through the node-step
middleware (executors.middleware), writes each node's end (fenced, through its Lease), and when
nothing is left here does what `GraphState.next_step` says (executors.handoff).
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from pathlib import Path
from typing import Any

from executors import handoff
from executors.graphcache import Parsed
from executors.interface import ExecutorAPI, NodeStep
from executors.middleware import CANCEL_GRACE_S
from spinbot.artifacts import ArtifactInfo, OwnedStore
from spinbot.errors import Cancelled, LostClaim, SpinbotError, classify, outage
from spinbot.graph import Graph, Node, NodeError
from spinbot.graphstate import GraphState, resolved_params
from spinbot.queue import NODE_FIELD, QUEUE_DOWN, TERMINAL_JOB, Claim, dumps, node_state
from spinbot.task import TaskContext

log = logging.getLogger(__name__)


def _float(raw: str | None) -> float:
    try:
        return float(raw or 0.0)
    except ValueError:
        return 0.0


class JobRun:
    """One claimed entry: load -> run ready nodes -> hand off or finish (see the module docstring)."""

    def __init__(self, ex: ExecutorAPI, claim: Claim) -> None:
        self.ex = ex
        self.entry = claim.entry
        self.fields = claim.fields
        self.deliveries = claim.deliveries
        self.job_id = claim.fields.get("job", "")
        self.lease = ex.consumer.lease(claim)
        self.cancel = asyncio.Event()
        self.running: dict[asyncio.Future[None], Node] = {}  # node tasks now running (run_ready)
        self.interrupted = False  # past a cancel's grace: node tasks still running were cancelled
        self._ended: asyncio.Queue[asyncio.Future[None] | None] = asyncio.Queue()  # node tasks ended; None: cancel
        self.task: asyncio.Task[None] | None = None
        self.parsed: Parsed | None = None
        self.node_progress: dict[str, float] = {}
        self.unrecorded: list[Node] = []  # ended, not yet written (see run_ready)
        self.reused: dict[str, dict[str, str]] = {}  # node id -> the job and node the node cache answered with
        self.changed: dict[str, dict[str, Any]] = {}  # node states this run wrote: the hand-off's delta
        self._batch: list[Node] = []  # nodes to write in the commit being gathered (see record)
        self._commit: asyncio.Future[None] | None = None
        self.version = 0
        self.lost: str | None = None  # why the claim heartbeat found the entry no longer ours
        # Job progress never goes back: a node re-run (after a crash, a re-issue, a retry) starts at 0.
        self.progress_floor = _float(claim.fields.get("progress"))

    @property
    def plane(self) -> str:
        return self.ex.plane

    @property
    def graph(self) -> Graph:
        assert self.parsed is not None
        return self.parsed.graph

    @property
    def state(self) -> GraphState:
        assert self.parsed is not None
        return self.parsed.state

    def request_cancel(self) -> None:
        """Running nodes see ctx.cancel at once; those still running after CANCEL_GRACE_S are interrupted."""
        if not self.cancel.is_set():
            log.info("job=%s plane=%s cancel requested", self.job_id, self.plane)
            self.cancel.set()
            self._ended.put_nowait(None)  # wakes run_ready
            asyncio.get_running_loop().call_later(CANCEL_GRACE_S, self.interrupt)

    def interrupt(self) -> None:
        self.interrupted = True
        for task in self.running:
            task.cancel()

    # ---- claim: load and check the job

    async def serve(self) -> None:
        if not self.job_id:
            await self.dead_letter("the entry has no job id")
            return
        if not await self.load_fast() and not await self.load():
            return
        # Per hand-off, so DEBUG (the node lines say what happened); a redelivery is a recovery: INFO.
        log.log(logging.INFO if self.deliveries > 1 else logging.DEBUG, "claimed job=%s plane=%s entry=%s delivery=%d",
                self.job_id, self.plane, self.entry, self.deliveries)
        await self.announce()
        await self.run_ready()
        await asyncio.shield(handoff.hand_off_or_finish(self))

    async def announce(self) -> None:
        """Say in the job's events why it runs again, if it does."""
        where = f"resumed by {self.ex.id} on the {self.plane} plane"
        if self.deliveries > 1:
            message = f"{where} (delivery {self.deliveries}): its previous executor stopped"
        elif reissued := self.fields.get("reissued"):
            message = f"{where}: re-issued because its {reissued}"
        elif interrupted := [n.id for n in self.state.ready_nodes() if n.status == "running"]:
            message = f"{where}: interrupted node(s) {', '.join(interrupted)} run again"
        else:
            return
        await self.emit("log", {"node": "", "message": message})

    async def load_fast(self) -> bool:
        """A hand-off to an executor that knows the job: apply the entry's delta (and, when its copy is
        several versions behind, the record's deltas since, read in one HMGET); False: read the record.

        When only the entry's delta is needed, ownership, a stale entry and the cancel flag are learnt
        at the first (fenced) commit."""
        have = self.ex.graphs.version(self.job_id)
        if self.deliveries > 1 or "delta" not in self.fields or have is None:
            return False
        try:
            version = int(self.fields.get("version", ""))
        except ValueError:
            return False
        if have >= version:
            return False
        older: list[str | None] = []
        if have < version - 1:
            head, older = await self.ex.consumer.read_since(self.job_id, range(have + 1, version))
            if any(d is None for d in older) or self.stale(head):
                return False
            self.progress_floor = max(self.progress_floor, _float(head.get("progress")))
            if head.get("cancel") == "1":
                self.cancel.set()
        try:
            parsed = self.ex.graphs.advance(self.job_id, version, [*(d for d in older if d), self.fields["delta"]])
        except (ValueError, KeyError, TypeError):
            self.ex.graphs.drop(self.job_id)  # half applied: read the record instead
            return False
        if parsed is None:
            return False
        self.parsed, self.version = parsed, version
        return True

    def stale(self, head: dict[str, str]) -> bool:
        """The record no longer names this entry, or the job is finished."""
        return (head.get("entry") != self.entry or head.get("stream") != self.lease.stream
                or head.get("status") in TERMINAL_JOB)

    async def load(self) -> bool:
        """Read the job record, check the entry still carries the job, build the graph; False if not to run."""
        raw = await self.ex.consumer.read_record(self.job_id)
        if not raw:
            await self.dead_letter(f"job {self.job_id} does not exist")
            return False
        if self.stale(raw):
            await self.drop_stale()
            return False
        self.version = int(raw.get("version") or 0)
        self.progress_floor = max(self.progress_floor, _float(raw.get("progress")))
        if self.deliveries > self.ex.settings.max_deliveries:
            await handoff.poison(self, f"the job's entry was delivered {self.deliveries} times (limit "
                                 f"{self.ex.settings.max_deliveries}) without finishing: a task keeps killing "
                                 "its executor")
            return False
        try:
            self.parsed = self.ex.graphs.load(self.job_id, raw)
        except (ValueError, KeyError) as e:
            await handoff.poison(self, f"the job's graph cannot be read: {e}")
            return False
        if raw.get("cancel") == "1":
            self.cancel.set()
        if raw.get("status") == "queued":
            await self.lease.commit(
                {"status": "running", "plane": self.plane},
                [("job", {"status": "running", "progress": self.job_progress(), "plane": self.plane})],
            )
        return True

    async def drop_if_stale(self) -> None:
        """After a lost claim: if the entry no longer carries its job, ack it away instead of leaving it pending."""
        if await self.ex.consumer.drop_if_stale(self.lease):
            self.lease.released = True

    async def dead_letter(self, reason: str) -> None:
        log.error("dead-lettered entry=%s plane=%s: %s", self.entry, self.plane, reason)
        self.lease.released = True
        await self.ex.consumer.dead_letter(self.entry, self.fields, reason)

    async def drop_stale(self) -> None:
        """An entry that no longer carries its job (a duplicate or a finished job): ack and forget."""
        log.info("dropped stale entry=%s job=%s plane=%s", self.entry, self.job_id, self.plane)
        self.lease.released = True
        await self.ex.consumer.drop(self.entry)

    # ---- the ready part of the graph

    def job_progress(self) -> float:
        """Weighted progress of the job, never below what was reported before (a re-run node restarts at 0)."""
        self.progress_floor = max(self.progress_floor, round(self.state.progress(self.node_progress), 4))
        return self.progress_floor

    async def run_ready(self) -> None:
        """Run every ready node of this plane, concurrently, until none is ready or running.

        A node's end is written at once while others still run or before new ones start; the last
        ones are written by the hand-off or finish that follows, in the same atomic commit.
        """
        self.state.restart()
        running = self.running
        try:
            while True:
                if not self.cancel.is_set():
                    self.unrecorded += self.state.skip_blocked()
                    ready = self.state.take_ready(self.plane)
                    if ready and self.unrecorded:
                        await self.record(self.take_unrecorded())
                    for node in ready:
                        task = asyncio.ensure_future(self.run_node(node))
                        task.add_done_callback(self._ended.put_nowait)
                        running[task] = node
                if not running:
                    return
                for t in await self.ended():
                    running.pop(t)
                    t.result()  # LostClaim / Redis errors abort the whole run
                if running and self.unrecorded:
                    await self.record(self.take_unrecorded())
        finally:
            for t in running:
                t.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
            running.clear()

    async def ended(self) -> list[asyncio.Future[None]]:
        """The node tasks that ended (at least one), or none when a cancel request arrives first."""
        out = [first] if (first := await self._ended.get()) is not None else []
        while not self._ended.empty():
            if (t := self._ended.get_nowait()) is not None:
                out.append(t)
        return out

    def take_unrecorded(self) -> list[Node]:
        nodes, self.unrecorded = self.unrecorded, []
        return nodes

    # ---- one node: the middleware chain, and its outcome

    async def run_node(self, node: Node) -> None:
        try:
            service = self.ex.registry.get(node.service)
        except SpinbotError as e:
            self.fail_node(node, e)
            return
        step = NodeStep(self, node, service)
        try:
            output = await self.ex.node_step(step)
        except Cancelled:
            self.finish_node(node, "cancelled")
            return
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self.interrupted or task is None or task.uncancel() > 0:
                raise  # not (only) the cancel's interruption: a shutdown, the run ending
            self.finish_node(node, "cancelled")
            return
        except (LostClaim, *QUEUE_DOWN):
            raise  # the executor's own Redis is gone: an outage, the entry stays pending
        except Exception as exc:
            if outage(exc) == "redis":  # Redis refusing writes: an outage as above, not the node's failure
                raise
            self.fail_node(node, classify(exc))
            return
        node.output = output
        if step.reused is not None:
            self.reused[node.id] = step.reused
        self.finish_node(node, "completed")

    async def begin_attempt(self, node: Node) -> None:
        """A new attempt of `node`: counted, its last outcome cleared, recorded `running`."""
        node.attempts += 1
        if node.error is not None:
            node.error = None
        if node.output is not None:
            node.output = None
        self.state.set_status(node.id, "running")
        self.node_progress[node.id] = 0.0
        await self.record([node])

    def task_context(self, node: Node, workdir: Path) -> TaskContext:
        ex, parsed = self.ex, self.parsed
        assert parsed is not None
        store = OwnedStore(ex.artifacts, owner=parsed.owner, job_id=self.job_id,
                           owner_of=ex.store.object_owner if ex.store else None)
        return TaskContext(job_id=self.job_id, node_id=node.id, attempt=node.attempts, settings=ex.settings,
                           store=store, emit=self._emitter(node), workdir=workdir, cancel=self.cancel,
                           graph_context=parsed.context, device=ex.device,
                           plane_manifest=partial(ex.registry.manifest, ex.settings))

    def resolve_inputs(self, node: Node) -> dict[str, Any]:
        """The node's params with every reference replaced by the upstream output or attachment it names."""
        return resolved_params(node, self.state.by_id, self.graph)

    # ---- record

    def fail_node(self, node: Node, err: SpinbotError) -> None:
        node.error = NodeError(code=err.code, message=err.message[:20000], transient=err.transient, hint=err.hint)
        self.finish_node(node, "failed")

    def finish_node(self, node: Node, status: str) -> None:
        """A node's end: written by run_ready (at once, or with the hand-off/finish that follows)."""
        if status != "failed" and node.error is not None:
            node.error = None
        self.state.set_status(node.id, status)
        self.node_progress.pop(node.id, None)
        self.unrecorded.append(node)

    def node_writes(self, nodes: list[Node]) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
        """The record fields and events for these nodes' states; logs one line per transition."""
        states = {n.id: node_state(n) for n in nodes}
        self.changed.update(states)
        fields: dict[str, Any] = {f"{NODE_FIELD}{nid}": dumps(st) for nid, st in states.items()}
        events = []
        for n in nodes:
            data: dict[str, Any] = {"node": n.id, "service": n.service, "plane": n.plane, "status": n.status,
                                    "attempts": n.attempts}
            if n.error:
                data["error"] = n.error.model_dump(mode="json", exclude_none=True)
            if n.output is not None and n.status == "completed":
                data["output"] = n.output
                if (made := self.reused.pop(n.id, None)) is not None:
                    data["reused"] = made
                if device := (self.ex.device or {}).get("name"):  # learned estimates are per device (spinbot/history)
                    data["device"] = str(device)
            events.append(("node", data))
            log.info("node %s job=%s node=%s plane=%s service=%s attempts=%d%s", n.status, self.job_id, n.id,
                     n.plane, n.service, n.attempts, f" error={n.error.message!r}" if n.error else "")
        return fields, events

    async def record(self, nodes: list[Node]) -> None:
        """Persist node states to the job record at once (fenced) with one event per node. Calls made in
        the same event-loop turn share one commit (a group commit: a wide fan-out starting or ending many
        nodes at once writes once, not once per node); each returns when its nodes are written."""
        self._batch += nodes
        if self._commit is None:
            self._commit = asyncio.ensure_future(self._commit_batch())
        await asyncio.shield(self._commit)

    async def _commit_batch(self) -> None:
        await asyncio.sleep(0)  # let the other nodes of this turn join
        nodes, self._batch, self._commit = self._batch, [], None
        fields, events = self.node_writes(nodes)
        fields["progress"] = repr(self.job_progress())
        await self.lease.commit(fields, events)
        if self.lease.cancel_requested:
            self.request_cancel()

    def _emitter(self, node: Node) -> Any:
        async def emit(kind: str, data: dict[str, Any]) -> None:
            if kind == "progress":
                self.node_progress[node.id] = float(data.get("progress", 0.0))
                data = {**data, "job_progress": self.job_progress()}
            elif kind == "artifact":
                await self.record_artifact(node, data)
            await self.emit(kind, data)

        return emit

    async def record_artifact(self, node: Node, data: dict[str, Any]) -> None:
        """Recorded before it is announced, so a client can fetch it as soon as it hears of it."""
        store = self.ex.store
        if store is None:
            return
        info = ArtifactInfo(str(data["key"]), int(data["size"]), str(data["sha256"]), str(data["contentType"]))
        try:
            await asyncio.wait_for(store.add_artifact(self.job_id, node.id, str(data["name"]), info), timeout=2.0)
        except Exception as e:  # Postgres down or slow: the writer retries; the run goes on
            log.warning("job=%s node=%s artifact %s not yet recorded (%s); retrying in the background",
                        self.job_id, node.id, data["key"], e)
            self.ex.background(store.add_artifact(self.job_id, node.id, str(data["name"]), info),
                               f"artifact {data['key']}")

    async def emit(self, kind: str, data: dict[str, Any]) -> None:
        fields = {"progress": repr(data["job_progress"])} if kind == "progress" else {}
        await self.lease.commit(fields, [(kind, data)])
        if self.lease.cancel_requested:
            self.request_cancel()

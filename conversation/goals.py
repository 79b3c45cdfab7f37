"""What the planner is given for a goal: the conversation as history, the previous plan, the attachments,
the owner's profiles and the live manifest with the durations learned from the jobs that ran."""

from __future__ import annotations

from typing import Any

from conversation import admission
from conversation.profiles import owned_profiles, planner_profile
from conversation.services import Services
from evaluator.model import Verdict
from planner import Message, PlanRequest, PlanResult, plan
from planner.models import Profile
from spinbot.capabilities import live_manifest
from spinbot.estimates import learned_manifest
from spinbot.graph import Attachment, Graph


def history_of(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Stored messages as planner history, and the latest plan (for follow-ups such as "make it 60 s")."""
    history = [{"role": m["role"], "content": m["content"], **({"job_id": m["job_id"]} if m.get("job_id") else {})}
               for m in messages if m["role"] in ("user", "assistant")]
    previous = next((m["graph"] for m in reversed(messages) if m.get("graph")), None)
    return history, previous


def asked_again(stored: list[dict[str, Any]], history: list[dict[str, Any]], message: str) -> bool:
    """Whether a client that sends the whole chat asks again at a point this conversation already answered:
    Open WebUI's Regenerate (or an edit back to the same words). True when a stored user message equal to
    `message` has an answer after it and follows the same user messages as the client's `history` (runs of one
    message repeated count once: each regenerate stores the message again)."""

    def runs(texts: list[str]) -> list[str]:
        return [t for i, t in enumerate(texts) if i == 0 or texts[i - 1] != t]

    sent = runs([str(m.get("content", "")) for m in history if m.get("role") == "user"])
    before: list[str] = []
    for i, m in enumerate(stored):
        if m["role"] != "user":
            continue
        if (m["content"] == message and runs(before) == sent
                and any(later["role"] == "assistant" for later in stored[i + 1:])):
            return True
        before.append(m["content"])
    return False


def ask_again(metadata: dict[str, Any]) -> None:
    """Mark a planned graph's metadata as a regenerate: its non-deterministic services run again
    (spinbot.nodecache)."""
    setting = metadata.get("cache", True)
    if setting is not False:
        metadata["cache"] = {**(setting if isinstance(setting, dict) else {}), "regenerate": True}


async def plan_goal(
    services: Services,
    goal: str,
    *,
    history: list[dict[str, Any]],
    previous: dict[str, Any] | None,
    attachments: list[dict[str, Any]],
    on_event: Any = None,
    owner: str | None = None,
    profile: str | None = None,
    again: bool = False,
) -> PlanResult:
    """The planner with what it needs: goal, conversation, previous plan, attachments, the owner's profiles
    (`profile`: the id of the one picked), the live manifest. The built graph is judged once, as admission
    judges it (admission.evaluate: the learned estimate, what `owner`'s node cache would reuse); the plan's
    verdict is passed on to admit. `again`: the goal is asked again (a regenerate): the graph says so
    (ask_again) before its estimate counts what the node cache would reuse."""
    manifest = await live_manifest(services.redis)
    profiles = [Profile.model_validate(planner_profile(p)) for p in await owned_profiles(services, owner)] \
        if owner is not None else []
    request = PlanRequest(
        goal=goal, history=[Message.model_validate(m) for m in history[-200:]], previous_graph=previous,
        attachments=[Attachment.model_validate(a) for a in attachments], profiles=profiles, profile=profile,
    )
    table = services.estimates.table(services.spawn)

    async def check(graph: Graph) -> Verdict:
        if again:
            ask_again(graph.metadata)
        return await admission.evaluate(services, graph, owner)

    return await plan(services.settings, request, learned_manifest(manifest, table), on_event,
                      limits=admission.limits(services.settings), check=check)

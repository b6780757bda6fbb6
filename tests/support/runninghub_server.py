"""A local server that speaks RunningHub's legacy task OpenAPI (``/task/openapi/*``) for the calls
Atelier makes, and serves the output files. Test infrastructure, not product code.

What it speaks (VENDORS.md 4.2): every call is ``POST`` with the ``apiKey`` in the JSON body (the
upload: in the multipart form) and answers HTTP 200 with the ``{code, msg, data}`` envelope;

- ``/task/openapi/upload`` (multipart ``apiKey``, ``file``, ``fileType``) →
  ``{fileName, fileType}``;
- ``/task/openapi/ai-app/run`` (``webappId`` as a string, ``nodeInfoList``, ``webhookUrl?``) →
  the task-create object with a 19-digit string ``taskId``; 803 when a node does not match the
  app, 1 when ``webappId`` is a number (precision lost on the way);
- ``/task/openapi/status`` → ``"QUEUED" | "RUNNING" | "SUCCESS" | "FAILED"``: a task is QUEUED for
  its first ``queued_polls`` status calls and ``queued_seconds``, then RUNNING likewise, then ends;
- ``/task/openapi/outputs`` → 813 while queued, 804 while running, 805 with ``failedReason`` when
  failed, the list of ``{fileUrl, fileType, taskCostTime, nodeId}`` when done;
- ``/task/openapi/cancel`` → ``null``;
- ``GET /files/{name}`` serves outputs (public, like RunningHub's CDN).

A wrong ``apiKey`` answers 802 APIKEY_UNAUTHORIZED. ``calls[task_id]`` counts every call naming
a task (status, outputs, cancel), ``status_counts[task_id]`` the status calls — the tests' proof
of who asked when. Test controls are Python attributes and methods: ``apps`` (webappId → node
ids), ``fail_next`` / ``fail``, ``outputs_next``, ``finish_now``, ``codes_next`` (the next calls
answer these codes; 0: normally), ``send_webhook``.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from PIL import Image

from tests.support.threaded_aiohttp import ThreadedServer

API_KEY = "rh-test-atelier-0123456789abcdef"
WEBAPP_POSE12 = "1877265245566922753"  # 19 digits: loses precision as a float
WEBAPP_TEXT = "1877265245566922799"
NODE_IMAGE = "12:image"
NODE_PROMPT = "6:text"
NODE_SEED = "9:seed"

MESSAGES = {
    0: "success",
    1: "webappId must be a string",
    412: "TOKEN_INVALID",
    415: "TASK_INSTANCE_MAXED",
    416: "TASK_CREATE_FAILED_BY_NOT_ENOUGH_WALLET",
    421: "TASK_QUEUE_MAXED",
    433: "VALIDATE_PROMPT_FAILED",
    801: "APIKEY_UNSUPPORTED_FREE_USER",
    802: "APIKEY_UNAUTHORIZED",
    803: "APIKEY_INVALID_NODE_INFO",
    804: "APIKEY_TASK_IS_RUNNING",
    805: "APIKEY_TASK_STATUS_ERROR",
    807: "APIKEY_TASK_NOT_FOUND",
    812: "CORPAPIKEY_INSUFFICIENT_FUNDS",
    813: "APIKEY_TASK_IS_QUEUED",
    814: "PERSONAL_QUEUE_COUNT_LIMIT",
}


def png(colour: tuple[int, int, int], side: int = 40) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(out, format="PNG")
    return out.getvalue()


def envelope(code: int, data: Any = None, msg: str | None = None) -> web.Response:
    return web.json_response(
        {"code": code, "msg": msg or MESSAGES.get(code, "error"), "data": data}
    )


@dataclass
class RhTask:
    task_id: str
    webapp_id: str
    nodes: list[dict[str, str]]
    webhook_url: str | None
    outputs: int
    created: float = field(default_factory=time.monotonic)
    status_calls: int = 0
    failed_reason: str | None = None
    cancelled: bool = False

    def state(
        self, queued_polls: int, running_polls: int, queued_s: float, running_s: float
    ) -> str:
        if self.cancelled:
            return "FAILED"
        if not self._past(queued_polls, queued_s):
            return "QUEUED"
        if not self._past(queued_polls + running_polls, queued_s + running_s):
            return "RUNNING"
        return "FAILED" if self.failed_reason is not None else "SUCCESS"

    def _past(self, polls: int, seconds: float) -> bool:
        return self.status_calls > polls and time.monotonic() - self.created >= seconds


class FakeRunningHub:
    def __init__(
        self,
        api_key: str = API_KEY,
        *,
        queued_polls: int = 1,
        running_polls: int = 1,
        queued_seconds: float = 0.0,
        running_seconds: float = 0.0,
        outputs: int = 12,
    ) -> None:
        self.api_key = api_key
        self.queued_polls, self.running_polls = queued_polls, running_polls
        self.queued_seconds, self.running_seconds = queued_seconds, running_seconds
        self.default_outputs = outputs
        # webappId → the nodeId:fieldName pairs the app accepts.
        self.apps: dict[str, set[str]] = {
            WEBAPP_POSE12: {NODE_IMAGE, NODE_PROMPT, NODE_SEED},
            WEBAPP_TEXT: {NODE_PROMPT, NODE_SEED},
        }
        self.tasks: dict[str, RhTask] = {}
        self.uploads: dict[str, bytes] = {}
        self.files: dict[str, bytes] = {}
        self.calls: Counter[str] = Counter()  # task id → calls naming it (any endpoint)
        self.status_counts: Counter[str] = Counter()  # task id → /task/openapi/status calls
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.webhook_statuses: list[int] = []
        self.fail_next: str | None = None  # the next run's task fails with this reason
        self.outputs_next: int | None = None  # the next run's task returns this many outputs
        self.codes_next: list[int] = []  # the next calls (any path) answer these codes
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        app = web.Application(client_max_size=40 * 1024 * 1024)
        app.router.add_post("/task/openapi/upload", self._upload)
        app.router.add_post("/task/openapi/ai-app/run", self._run)
        app.router.add_post("/task/openapi/status", self._status)
        app.router.add_post("/task/openapi/outputs", self._outputs)
        app.router.add_post("/task/openapi/cancel", self._cancel)
        app.router.add_get("/files/{name}", self._file)
        self._server = ThreadedServer(app, access_log=False)
        self.url = self._server.url

    def tasks_settings(self) -> dict[str, str]:
        """The RUNNINGHUB_* settings of a tasks service whose model_pose12 app runs here."""
        return {
            "RUNNINGHUB_API_KEY": API_KEY,
            "RUNNINGHUB_API_BASE": self.url,
            "RUNNINGHUB_WEBAPP_ID_MODEL_POSE12": WEBAPP_POSE12,
            "RUNNINGHUB_NODE_IMAGE": NODE_IMAGE,
            "RUNNINGHUB_NODE_PROMPT": NODE_PROMPT,
            "RUNNINGHUB_NODE_SEED": NODE_SEED,
            "RUNNINGHUB_OUTPUT_TRUSTED_ORIGINS": self.url,
        }

    def close(self) -> None:
        self._server.close()

    # ---- protocol ---------------------------------------------------------------------------

    def _forced(self) -> int | None:
        with self._lock:
            code = self.codes_next.pop(0) if self.codes_next else 0
        return code or None  # 0: this call is answered normally

    async def _json(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return {}, envelope(301, msg="PARAMS_INVALID")
        if not isinstance(payload, dict):
            return {}, envelope(301, msg="PARAMS_INVALID")
        self.requests.append((request.path, payload))
        if payload.get("apiKey") != self.api_key:
            return payload, envelope(802)
        forced = self._forced()
        if forced is not None:
            return payload, envelope(forced)
        return payload, None

    def _task(self, payload: dict[str, Any]) -> tuple[RhTask | None, web.Response | None]:
        task_id = payload.get("taskId")
        if isinstance(task_id, str):
            self.calls[task_id] += 1
        task = self.tasks.get(task_id) if isinstance(task_id, str) else None
        return task, None if task is not None else envelope(807)

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.requests.append((request.path, {k: str(v)[:40] for k, v in form.items()}))
        if form.get("apiKey") != self.api_key:
            return envelope(802)
        forced = self._forced()
        if forced is not None:
            return envelope(forced)
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return envelope(301, msg="PARAMS_INVALID")
        data = upload.file.read()
        name = f"api/{hashlib.sha256(data).hexdigest()}.png"
        self.uploads[name] = data
        return envelope(0, {"fileName": name, "fileType": str(form.get("fileType", "input"))})

    async def _run(self, request: web.Request) -> web.Response:
        payload, refused = await self._json(request)
        if refused is not None:
            return refused
        webapp = payload.get("webappId")
        if not isinstance(webapp, str):
            return envelope(1)
        accepted = self.apps.get(webapp)
        if accepted is None:
            return envelope(901, msg="WEBAPP_NOT_EXISTS")
        nodes = payload.get("nodeInfoList")
        if not isinstance(nodes, list) or not nodes:
            return envelope(803)
        for node in nodes:
            pair = f"{node.get('nodeId')}:{node.get('fieldName')}"
            if pair not in accepted or not isinstance(node.get("fieldValue"), str):
                return envelope(803)
            if pair == NODE_IMAGE and node["fieldValue"] not in self.uploads:
                return envelope(803)
        with self._lock:
            task_id = str(1910246754753896450 + next(self._seq))
            outputs = self.outputs_next if self.outputs_next is not None else self.default_outputs
            task = RhTask(task_id, webapp, nodes, payload.get("webhookUrl"), outputs)
            task.failed_reason, self.fail_next, self.outputs_next = self.fail_next, None, None
            self.tasks[task_id] = task
        return envelope(
            0,
            {
                "netWssUrl": None,
                "taskId": task_id,
                "clientId": "atelier-test",
                "taskStatus": "QUEUED",
                "promptTips": json.dumps({"result": True, "error": None, "node_errors": {}}),
            },
        )

    def _state(self, task: RhTask) -> str:
        return task.state(
            self.queued_polls, self.running_polls, self.queued_seconds, self.running_seconds
        )

    async def _status(self, request: web.Request) -> web.Response:
        payload, refused = await self._json(request)
        task, missing = self._task(payload)
        if refused is not None or missing is not None:
            return refused or missing  # type: ignore[return-value]
        assert task is not None
        task.status_calls += 1
        self.status_counts[task.task_id] += 1
        return envelope(0, self._state(task))

    async def _outputs(self, request: web.Request) -> web.Response:
        payload, refused = await self._json(request)
        task, missing = self._task(payload)
        if refused is not None or missing is not None:
            return refused or missing  # type: ignore[return-value]
        assert task is not None
        state = self._state(task)
        if state == "QUEUED":
            return envelope(813)
        if state == "RUNNING":
            return envelope(804)
        if state == "FAILED":
            reason = "cancelled" if task.cancelled else task.failed_reason
            return envelope(805, {"failedReason": self._failed_reason(reason or "failed")})
        return envelope(0, self._output_list(task))

    async def _cancel(self, request: web.Request) -> web.Response:
        payload, refused = await self._json(request)
        task, missing = self._task(payload)
        if refused is not None or missing is not None:
            return refused or missing  # type: ignore[return-value]
        assert task is not None
        if self._state(task) in ("QUEUED", "RUNNING"):
            task.cancelled = True
        return envelope(0, None)

    async def _file(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="image/png")

    def _failed_reason(self, message: str) -> dict[str, Any]:
        return {
            "node_id": "12",
            "node_name": "KSampler",
            "exception_type": "RuntimeError",
            "exception_message": message,
            "traceback": ["..."],
            "current_inputs": {},
            "current_outputs": {},
        }

    def _output_list(self, task: RhTask) -> list[dict[str, Any]]:
        out = []
        for index in range(task.outputs):
            name = f"{task.task_id}-{index:02d}.png"
            if name not in self.files:
                self.files[name] = png((20 * index % 256, 120, 255 - 20 * index % 256))
            out.append(
                {
                    "fileUrl": f"{self.url}/files/{name}",
                    "fileType": "png",
                    "taskCostTime": "3",
                    "nodeId": "30",
                }
            )
        return out

    # ---- test controls ------------------------------------------------------------------------

    def fail(self, task_id: str, reason: str = "CUDA out of memory") -> None:
        """The app fails this task (it still passes through QUEUED and RUNNING first)."""
        self.tasks[task_id].failed_reason = reason

    def finish_now(self, task_id: str) -> None:
        """Skip the remaining QUEUED/RUNNING steps: the next status call sees the end."""
        task = self.tasks[task_id]
        task.status_calls = max(task.status_calls, self.queued_polls + self.running_polls + 1)
        task.created = time.monotonic() - self.queued_seconds - self.running_seconds

    def node_values(self, task_id: str) -> dict[str, str]:
        task = self.tasks[task_id]
        return {f"{n['nodeId']}:{n['fieldName']}": n["fieldValue"] for n in task.nodes}

    def webhook_body(self, task_id: str) -> bytes:
        task = self.tasks[task_id]
        data = self._output_list(task) if self._state(task) == "SUCCESS" else []
        return json.dumps(
            {
                "event": "TASK_END",
                "taskId": task_id,
                "eventData": json.dumps({"code": 0, "data": data}),
            }
        ).encode()

    def send_webhook(self, task_id: str) -> int:
        """POST the TASK_END event to the task's webhookUrl (unsigned, like RunningHub)."""
        url = self.tasks[task_id].webhook_url
        assert url, "the task was run without a webhookUrl"
        request = urllib.request.Request(
            url,
            data=self.webhook_body(task_id),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
        except urllib.error.URLError:
            status = 0
        self.webhook_statuses.append(status)
        return status

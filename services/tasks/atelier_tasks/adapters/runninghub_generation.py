"""RunningHub as a (polling-style) generation provider: a small client of ours on ``httpx`` for
the legacy task OpenAPI (``/task/openapi/*``; RunningHub has no official Python SDK).

- ``submit`` uploads the input photo (``/task/openapi/upload``, multipart), then runs the AI app
  configured for the task type (``/task/openapi/ai-app/run``; ``webappId`` is sent as a string —
  it is a 19-digit number that a float would corrupt) with our node inputs: the uploaded file
  name on the image node, the server-side prompt (model_pose12: built from scene × category in
  the task-type registry; never shown to clients) on the prompt node, and a random seed on the
  seed node where the app has one. The answer's ``taskId`` (a 19-digit string) is the job id.
- ``poll`` asks ``/task/openapi/status``; QUEUED and RUNNING are still running; SUCCESS reads
  ``/task/openapi/outputs`` and downloads EVERY output through a :class:`SafeOutputFetcher`
  (host allow-list, no private addresses, size limit, image types) — the application checks the
  count its task type needs (12 for model_pose12; fewer fails the task); FAILED reads the
  vendor's ``failedReason`` (code 805) and becomes a failed result carrying it.
- ``parse_notification``: the completion webhook (``TASK_END``) is unsigned, so it is only a
  hint: the body is checked for shape and its ``taskId`` returned with ``poll_now`` — the worker
  then polls that task at once (if it is ours and still processing); ``eventData`` is ignored.

The ``{code, msg, data}`` envelope (HTTP 200 even for errors) is checked on every call:
back-pressure codes (415, 421, 804, 813, 814), transport trouble, 429 and 5xx →
ProviderUnavailable (retried later); auth, balance and parameter codes (412, 416, 433, 801–803,
812) and other 4xx → ProviderRejected with a reason an admin can act on.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from atelier_ports.errors import InvalidNotification, ProviderRejected, ProviderUnavailable
from atelier_tasks.adapters.safe_fetch import OutputRefused, SafeOutputFetcher
from atelier_tasks.application.ports.generation import (
    GeneratedOutput,
    GenerationNotification,
    GenerationRequest,
    GenerationResult,
    GenerationState,
    ProviderStyle,
)

DEFAULT_API_BASE = "https://www.runninghub.cn"

# Codes that mean "busy, ask again later" (queue or instance limits, the task not done yet).
BACK_PRESSURE = frozenset({415, 421, 804, 813, 814})
# Codes an admin must act on: what to check, in words.
ADMIN_CODES: Mapping[int, str] = {
    412: "token invalid — check RUNNINGHUB_API_BASE and the endpoint path",
    416: "the RunningHub wallet has too little balance — top it up",
    433: "the app rejected the prompt — check the app's inputs (RUNNINGHUB_NODE_*)",
    801: "the API key belongs to a free account — RunningHub's API needs a paid membership",
    802: "the API key is not accepted — check RUNNINGHUB_API_KEY",
    803: "the node inputs do not match the app — check RUNNINGHUB_NODE_IMAGE / _PROMPT and the "
    "app id (RUNNINGHUB_WEBAPP_ID_*)",
    812: "the enterprise API key has insufficient funds — top up the account",
}
# Other permanent codes worth a hint (still failures, never retried).
HINTS: Mapping[int, str] = {
    **ADMIN_CODES,
    806: "no RunningHub user for this API key — check RUNNINGHUB_API_KEY",
    811: "the enterprise API key is not valid — check RUNNINGHUB_API_KEY",
    901: "no such AI app — check RUNNINGHUB_WEBAPP_ID_*",
}
TASK_FAILED = 805
UNKNOWN_ERROR = 500  # RunningHub's own trouble: worth asking again
RUNNING_STATES = frozenset({"QUEUED", "RUNNING"})


class RunningHubBusy(ProviderUnavailable):
    """A back-pressure code: the call is worth making again later."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class RunningHubError(ProviderRejected):
    """A non-zero code that asking again will not fix."""

    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


def parse_node(spec: str) -> tuple[str, str]:
    """``nodeId:fieldName`` (e.g. ``12:image``) → the pair; ValueError otherwise."""
    node, sep, field_name = spec.strip().partition(":")
    if not sep or not node or not field_name:
        raise ValueError(f"a RunningHub node input must be 'nodeId:fieldName', got {spec!r}")
    return node, field_name


class RunningHubGenerationProvider:
    def __init__(
        self,
        *,
        api_key: str,
        apps: Mapping[str, str],
        prompt_node: str,
        fetcher: SafeOutputFetcher,
        image_node: str = "",
        seed_node: str = "",
        base_url: str = DEFAULT_API_BASE,
        webhook_url: str | None = None,
        timeout_seconds: float = 30.0,
        seed: Callable[[], int] | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("RunningHub needs RUNNINGHUB_API_KEY")
        self._key = api_key
        # task type → webappId (a digit string, never a number).
        self._apps = {t: a.strip() for t, a in apps.items() if a and a.strip()}
        for task_type, app in self._apps.items():
            if not app.isdigit():
                raise ValueError(f"RunningHub app id for {task_type} must be digits, got {app!r}")
        self._image = parse_node(image_node) if image_node.strip() else None
        self._prompt = parse_node(prompt_node)
        self._seed_node = parse_node(seed_node) if seed_node.strip() else None
        self._fetcher = fetcher
        self._webhook_url = webhook_url
        self._seed = seed or (lambda: secrets.randbelow(2**32))
        self._http = httpx.Client(
            base_url=(base_url or DEFAULT_API_BASE).rstrip("/"),
            timeout=httpx.Timeout(timeout_seconds, connect=5.0),
        )

    @property
    def name(self) -> str:
        return "runninghub"

    @property
    def style(self) -> ProviderStyle:
        return ProviderStyle.POLLING

    def close(self) -> None:
        self._http.close()

    # --- calls ---------------------------------------------------------------------------------

    def submit(self, request: GenerationRequest) -> GenerationResult:
        if "sandbox_outcome" in request.params:
            raise ProviderRejected("sandbox_outcome is a local-provider test trigger only")
        app = self._apps.get(request.task_type)
        if app is None:
            raise ProviderRejected(f"no RunningHub app configured for {request.task_type!r}")
        if request.task_type != "text_to_image" and len(request.inputs) != 1:
            raise ProviderRejected(f"{request.task_type} needs exactly one input image")
        nodes: list[dict[str, str]] = []
        if request.inputs:
            if self._image is None:
                raise ProviderRejected(
                    "RunningHub has no image input configured (RUNNINGHUB_NODE_IMAGE)"
                )
            nodes.append(self._node(self._image, self._upload(request.inputs[0])))
        prompt = request.prompt or request.params.get("prompt")
        if isinstance(prompt, str) and prompt:
            nodes.append(self._node(self._prompt, prompt))
        if self._seed_node is not None:
            seed = request.params.get("seed")
            nodes.append(
                self._node(self._seed_node, str(seed if seed is not None else self._seed()))
            )
        body: dict[str, Any] = {"webappId": app, "nodeInfoList": nodes}
        if self._webhook_url:
            body["webhookUrl"] = self._webhook_url
        data = self._call("/task/openapi/ai-app/run", body)
        job_id = _task_id(data.get("taskId")) if isinstance(data, dict) else None
        if job_id is None:
            raise ProviderUnavailable("RunningHub answered the run without a taskId")
        if data.get("taskStatus") == "FAILED":
            return GenerationResult(
                GenerationState.FAILED,
                job_id,
                error=f"RunningHub refused the task: {_tips(data.get('promptTips'))}",
            )
        return GenerationResult(GenerationState.RUNNING, job_id)

    def poll(self, provider_job_id: str) -> GenerationResult:
        job = provider_job_id
        status = self._call("/task/openapi/status", {"taskId": job})
        if status in RUNNING_STATES:
            return GenerationResult(GenerationState.RUNNING, job)
        if status == "FAILED":
            return GenerationResult(GenerationState.FAILED, job, error=self._failure(job))
        if status != "SUCCESS":
            raise ProviderUnavailable(f"RunningHub answered an unknown status {status!r}")
        try:
            files = self._call("/task/openapi/outputs", {"taskId": job})
        except RunningHubError as exc:
            if exc.code == TASK_FAILED:
                return GenerationResult(GenerationState.FAILED, job, error=_reason(exc.data))
            raise
        return self._download(job, files)

    def cancel(self, provider_job_id: str) -> None:
        try:
            self._call("/task/openapi/cancel", {"taskId": provider_job_id})
        except ProviderRejected:
            return None  # unknown or already finished: nothing to cancel

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> GenerationNotification:
        """Unsigned: a hint to poll the named task now; nothing in it is believed."""
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidNotification("the RunningHub webhook body is not JSON") from exc
        if not isinstance(payload, dict) or payload.get("event") != "TASK_END":
            raise InvalidNotification("not a RunningHub TASK_END event")
        job = _task_id(payload.get("taskId"))
        if job is None:
            raise InvalidNotification("the RunningHub webhook names no valid taskId")
        return GenerationNotification(
            f"runninghub:{job}",
            job,
            GenerationResult(GenerationState.RUNNING, job),
            poll_now=True,
        )

    # --- the wire ------------------------------------------------------------------------------

    def _node(self, node: tuple[str, str], value: str) -> dict[str, str]:
        return {"nodeId": node[0], "fieldName": node[1], "fieldValue": value}

    def _upload(self, data: bytes) -> str:
        kind = _image_type(data)
        answer = self._send(
            "/task/openapi/upload",
            lambda: self._http.post(
                "/task/openapi/upload",
                data={"apiKey": self._key, "fileType": "input"},
                files={"file": (f"input.{kind.split('/')[-1]}", data, kind)},
            ),
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("fileName"), str):
            raise ProviderUnavailable("RunningHub answered the upload without a fileName")
        return str(answer["fileName"])

    def _call(self, path: str, body: dict[str, Any]) -> Any:
        payload = {"apiKey": self._key, **body}
        return self._send(path, lambda: self._http.post(path, json=payload))

    def _send(self, path: str, do: Callable[[], httpx.Response]) -> Any:
        """One call, its envelope checked; the ``data`` on code 0."""
        what = path.rsplit("/", 1)[-1]
        try:
            response = do()
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"RunningHub unreachable ({what}): {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise ProviderUnavailable(f"RunningHub answered HTTP {response.status_code} ({what})")
        if response.status_code != 200:
            raise ProviderRejected(f"RunningHub answered HTTP {response.status_code} ({what})")
        try:
            envelope = response.json()
            code = envelope["code"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderUnavailable(f"RunningHub answered without an envelope ({what})") from exc
        if not isinstance(code, int) or isinstance(code, bool):
            raise ProviderUnavailable(f"RunningHub answered a malformed code ({what})")
        if code == 0:
            return envelope.get("data")
        msg = str(envelope.get("msg") or "error")[:200]
        if code in BACK_PRESSURE:
            raise RunningHubBusy(code, f"RunningHub is busy ({what}: {code} {msg}); asking later")
        if code in HINTS:
            raise RunningHubError(
                code, f"RunningHub refused the call ({what}: {code} {msg}): {HINTS[code]}"
            )
        if code == UNKNOWN_ERROR:
            raise ProviderUnavailable(f"RunningHub failed ({what}: {code} {msg})")
        raise RunningHubError(
            code, f"RunningHub refused the call ({what}: {code} {msg})", envelope.get("data")
        )

    def _failure(self, job: str) -> str:
        """The vendor's reason for a FAILED task (outputs answers 805 with ``failedReason``)."""
        try:
            self._call("/task/openapi/outputs", {"taskId": job})
        except RunningHubError as exc:
            if exc.code == TASK_FAILED:
                return _reason(exc.data)
            return str(exc)
        except ProviderUnavailable:
            pass
        return "RunningHub task failed: no detail"

    def _download(self, job: str, files: object) -> GenerationResult:
        if not isinstance(files, list) or not files:
            return GenerationResult(
                GenerationState.FAILED, job, error="RunningHub returned no output files"
            )
        outputs: list[GeneratedOutput] = []
        for item in files:
            url = item.get("fileUrl") if isinstance(item, dict) else None
            if not isinstance(url, str) or not url:
                return GenerationResult(
                    GenerationState.FAILED, job, error="RunningHub returned an output without a URL"
                )
            try:
                data, content_type = self._fetcher.fetch(url)
            except OutputRefused as exc:
                return GenerationResult(GenerationState.FAILED, job, error=str(exc))
            except ProviderUnavailable as exc:
                # The outputs stay at RunningHub for a while: the next poll fetches them again.
                return GenerationResult(GenerationState.RUNNING, job, error=str(exc))
            outputs.append(GeneratedOutput(content_type=content_type, data=data))
        return GenerationResult(GenerationState.SUCCEEDED, job, outputs=outputs)


def _task_id(value: object) -> str | None:
    """RunningHub's task ids are 19-digit snowflakes; kept as strings."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.isdigit() and 1 <= len(value) <= 20:
        return value
    return None


def _reason(data: object) -> str:
    failed = data.get("failedReason") if isinstance(data, dict) else None
    if isinstance(failed, dict):
        kind = str(failed.get("exception_type") or "").strip()
        message = str(failed.get("exception_message") or "").strip()
        node = str(failed.get("node_name") or failed.get("node_id") or "").strip()
        text = ": ".join(part for part in (kind, message) if part) or "no detail"
        where = f" (node {node})" if node else ""
        return f"RunningHub task failed: {text[:300]}{where}"
    return "RunningHub task failed: no detail"


def _tips(tips: object) -> str:
    try:
        parsed = json.loads(tips) if isinstance(tips, str) else tips
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("error"):
        return str(parsed["error"])[:300]
    return "no detail"


def _image_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"

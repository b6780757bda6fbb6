"""Replicate as a (webhook-style) generation provider, through the official ``replicate`` SDK.

- ``submit`` creates a prediction with our webhook URL and ``webhook_events_filter=["completed"]``;
  the model per task type comes from configuration: ``owner/name`` runs the model's latest
  version (``POST /v1/models/{owner}/{name}/predictions``), ``owner/name:version`` pins one.
- ``parse_notification`` verifies ``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature``
  with the SDK's verifier over the raw body; the timestamp window (default 300 s) is checked
  against our Clock port.
- ``poll`` is the worker's lost-webhook sweep (``GET /v1/predictions/{id}``).
- Outputs of a succeeded prediction are downloaded at once (Replicate deletes them after about an
  hour) through a :class:`SafeOutputFetcher` — host allow-list, no private addresses, size limit,
  image content types — and handed to the application as bytes to store under our keys. A
  refused output fails the task with the refusal as its message (the hold is then released).
- ``canceled`` and ``failed`` predictions become failed results.
- Input images up to 256 KiB travel inline as data URLs; larger ones as a short-lived signed URL
  of our storage (``input_url``), as Replicate recommends.
- ``params.sandbox_outcome`` (the local provider's test trigger) is rejected.

Vendor errors are translated at this boundary: transport trouble, 429 and 5xx →
ProviderUnavailable; other 4xx → ProviderRejected; bad webhooks → InvalidNotification.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import replicate
from replicate.exceptions import ReplicateError
from replicate.webhook import WebhookSigningSecret

from atelier_ports.clock import Clock
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

T = TypeVar("T")
_TERMINAL_FAILURES = {"failed", "canceled"}


@dataclass(frozen=True, slots=True)
class ReplicateModel:
    """``owner/name`` (latest version) or ``owner/name:version`` (pinned)."""

    model: str
    version: str | None = None

    @classmethod
    def parse(cls, spec: str) -> ReplicateModel:
        model, _, version = spec.strip().partition(":")
        if model.count("/") != 1 or not all(model.split("/")):
            raise ValueError(f"Replicate model must be 'owner/name[:version]', got {spec!r}")
        return cls(model, version or None)


class ReplicateGenerationProvider:
    def __init__(
        self,
        *,
        api_token: str,
        webhook_secret: str,
        webhook_url: str,
        models: Mapping[str, str],
        fetcher: SafeOutputFetcher,
        clock: Clock,
        base_url: str | None = None,
        tolerance_seconds: int = 300,
        timeout_seconds: float = 30.0,
        input_url: Callable[[str], str] | None = None,
        inline_input_max_bytes: int = 256 * 1024,
    ) -> None:
        if not api_token or not webhook_secret:
            raise ValueError("Replicate needs REPLICATE_API_TOKEN and REPLICATE_WEBHOOK_SECRET")
        if not webhook_secret.startswith("whsec_"):
            raise ValueError("REPLICATE_WEBHOOK_SECRET must look like 'whsec_<base64>'")
        self._client = replicate.Client(
            api_token=api_token,
            base_url=base_url or None,
            timeout=httpx.Timeout(timeout_seconds, connect=5.0),
        )
        self._secret = WebhookSigningSecret(key=webhook_secret)
        self._webhook_url = webhook_url
        self._models = {task: ReplicateModel.parse(spec) for task, spec in models.items() if spec}
        self._fetcher = fetcher
        self._clock = clock
        self._tolerance = tolerance_seconds
        # Inputs above the inline limit travel as a short-lived signed URL of our storage.
        self._input_url = input_url
        self._inline_max = inline_input_max_bytes

    @property
    def name(self) -> str:
        return "replicate"

    @property
    def style(self) -> ProviderStyle:
        return ProviderStyle.WEBHOOK

    # --- calls ---------------------------------------------------------------------------------

    def submit(self, request: GenerationRequest) -> GenerationResult:
        if "sandbox_outcome" in request.params:
            raise ProviderRejected("sandbox_outcome is a local-provider test trigger only")
        model = self._models.get(request.task_type)
        if model is None:
            raise ProviderRejected(f"no Replicate model configured for {request.task_type!r}")
        model_input = _model_input(request, self._input_ref)
        params: dict[str, Any] = {
            "input": model_input,
            "webhook": self._webhook_url,
            "webhook_events_filter": ["completed"],
        }
        if model.version:
            prediction = self._call(
                lambda: self._client.predictions.create(version=model.version, **params)
            )
        else:
            prediction = self._call(
                lambda: self._client.predictions.create(model=model.model, **params)
            )
        return self._result(prediction)

    def poll(self, provider_job_id: str) -> GenerationResult:
        return self._result(self._call(lambda: self._client.predictions.get(provider_job_id)))

    def cancel(self, provider_job_id: str) -> None:
        try:
            self._call(lambda: self._client.predictions.cancel(provider_job_id))
        except ProviderRejected:
            return None  # unknown or already finished: nothing to cancel

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> GenerationNotification:
        lowered = {k.lower(): v for k, v in headers.items()}
        webhook_id = lowered.get("webhook-id", "")
        timestamp = lowered.get("webhook-timestamp", "")
        if not webhook_id or not timestamp.isdigit():
            raise InvalidNotification("missing webhook-id or webhook-timestamp")
        if abs(self._clock.now().timestamp() - int(timestamp)) > self._tolerance:
            raise InvalidNotification("webhook timestamp outside the tolerance window")
        try:
            text = body.decode("utf-8")
            # The SDK's verifier (standard-webhooks scheme); the time window is checked above
            # against our clock, so it is given no tolerance of its own.
            self._client.webhooks.validate(headers=lowered, body=text, secret=self._secret)
        except (ValueError, UnicodeDecodeError) as exc:  # WebhookValidationError, bad base64
            raise InvalidNotification(f"webhook signature not verified: {exc}") from exc
        try:
            payload = json.loads(text)
            job_id = str(payload["id"])
            status = str(payload["status"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidNotification("webhook body is not a prediction") from exc
        result = self._result_from(job_id, status, payload.get("output"), payload.get("error"))
        return GenerationNotification(webhook_id, job_id, result)

    # --- mapping -------------------------------------------------------------------------------

    def _input_ref(self, request: GenerationRequest, index: int) -> str:
        data = request.inputs[index]
        keys = request.input_keys
        if len(data) > self._inline_max and self._input_url is not None and index < len(keys):
            return self._input_url(keys[index])
        return _data_uri(data)

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except ReplicateError as exc:
            status = exc.status or 0
            message = f"Replicate answered {status}: {exc.detail or exc.title or 'error'}"
            if status == 429 or status >= 500:
                raise ProviderUnavailable(message) from exc
            raise ProviderRejected(message) from exc
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"Replicate unreachable: {exc}") from exc

    def _result(self, prediction: Any) -> GenerationResult:
        return self._result_from(
            str(prediction.id), str(prediction.status), prediction.output, prediction.error
        )

    def _result_from(
        self, job_id: str, status: str, output: object, error: object
    ) -> GenerationResult:
        if status == "succeeded":
            return self._download(job_id, output)
        if status in _TERMINAL_FAILURES:
            message = (
                "the prediction was canceled at Replicate"
                if status == "canceled"
                else f"Replicate prediction failed: {error or 'no detail'}"
            )
            return GenerationResult(GenerationState.FAILED, job_id, error=message)
        return GenerationResult(GenerationState.RUNNING, job_id)

    def _download(self, job_id: str, output: object) -> GenerationResult:
        urls = [output] if isinstance(output, str) else output
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            return GenerationResult(
                GenerationState.FAILED, job_id, error="Replicate returned no output files"
            )
        outputs: list[GeneratedOutput] = []
        for url in urls:
            try:
                data, content_type = self._fetcher.fetch(url)
            except OutputRefused as exc:
                return GenerationResult(GenerationState.FAILED, job_id, error=str(exc))
            except ProviderUnavailable as exc:
                # Still ours to fetch: the lost-webhook sweep polls and downloads again.
                return GenerationResult(GenerationState.RUNNING, job_id, error=str(exc))
            outputs.append(GeneratedOutput(content_type=content_type, data=data))
        return GenerationResult(GenerationState.SUCCEEDED, job_id, outputs=outputs)


def _model_input(
    request: GenerationRequest, image_ref: Callable[[GenerationRequest, int], str]
) -> dict[str, Any]:
    params = request.params
    out: dict[str, Any] = {}
    if request.task_type == "text_to_image":
        for key in ("prompt", "negative_prompt", "width", "height", "seed"):
            if params.get(key) not in (None, ""):
                out[key] = params[key]
        if request.inputs:
            out["image"] = image_ref(request, 0)
        return out
    if len(request.inputs) != 1:
        raise ProviderRejected(f"{request.task_type} needs exactly one input image")
    out["image"] = image_ref(request, 0)
    if request.prompt:
        out["prompt"] = request.prompt
    if request.task_type == "model_pose12":
        out["num_outputs"] = 12
    for key, value in params.items():
        if key not in out and isinstance(value, str | int | float | bool):
            out[key] = value
    return out


def _data_uri(data: bytes) -> str:
    """Small inputs travel inline, as a data URL."""
    kind = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = "image/webp"
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"

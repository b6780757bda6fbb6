"""Tencent Cloud Infinite as a synchronous generation provider for ``basic_clean``, through
``cos-python-sdk-v5``.

The input image is processed by a ``Pic-Operations`` rule — auto-orient, fit into a square,
pad the rest with white, JPEG (no transparency left: the background is white) — and the result is
read back and handed to the application as bytes, to be stored as the task's image:

- when the input object is in the CI bucket (the cn market stores uploads in COS), it is processed
  where it is (``POST /<key>?image_process``, "cloud processing");
- otherwise (another store, e.g. ``TASKS_STORAGE=local``) the input bytes are uploaded to a work
  key with the rule on the upload itself (``PUT`` with ``Pic-Operations``);
- the processed object (and any work copy) lives under ``{user_id}/ci/{task_id}/`` and is deleted
  once read.

Vendor errors are translated here: a 4xx about the image (not an image, too large, a bad rule) →
a failed result with the vendor's code; refused keys (401/403) → ProviderRejected, with a reason
an admin can act on; 429, 5xx, timeouts and transport trouble → ProviderUnavailable (retried).
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Mapping
from typing import Any

from qcloud_cos import CosClientError, CosS3Client, CosServiceError

from atelier_ports.errors import InvalidNotification, ProviderRejected, ProviderUnavailable
from atelier_tasks.adapters.cos_storage import cos_config
from atelier_tasks.application.ports.generation import (
    GeneratedOutput,
    GenerationNotification,
    GenerationRequest,
    GenerationResult,
    GenerationState,
    ProviderStyle,
)

TASK_TYPE = "basic_clean"
_MISSING = {"NoSuchKey", "NoSuchResource"}


def clean_rule(side: int) -> str:
    """auto-orient → fit into side×side → pad with white to the square → JPEG."""
    white = base64.urlsafe_b64encode(b"#FFFFFF").decode().rstrip("=")
    return f"imageMogr2/auto-orient/thumbnail/{side}x{side}/pad/1/color/{white}/format/jpg"


class TencentCiGenerationProvider:
    def __init__(
        self,
        *,
        bucket: str,
        region: str,
        secret_id: str,
        secret_key: str,
        endpoint: str = "",
        side: int = 1024,
        timeout_seconds: float = 60.0,
        retries: int = 1,  # the SDK's own, for transport errors and 5xx
    ) -> None:
        if not (bucket and region and secret_id and secret_key):
            raise ValueError("Tencent Cloud Infinite needs COS_BUCKET, COS_REGION and the COS keys")
        self.bucket = bucket
        self.rule = clean_rule(side)
        config = cos_config(
            region=region,
            secret_id=secret_id,
            secret_key=secret_key,
            endpoint=endpoint,
            timeout_seconds=timeout_seconds,
        )
        self._client: Any = CosS3Client(config, retry=retries)

    @property
    def name(self) -> str:
        return "tencent_ci"

    @property
    def style(self) -> ProviderStyle:
        return ProviderStyle.SYNCHRONOUS

    def submit(self, request: GenerationRequest) -> GenerationResult:
        if "sandbox_outcome" in request.params:
            raise ProviderRejected("sandbox_outcome is a local-provider test trigger only")
        if request.task_type != TASK_TYPE:
            raise ProviderRejected(f"Tencent Cloud Infinite does not do {request.task_type!r}")
        if len(request.input_keys) != 1:
            raise ProviderRejected(f"{TASK_TYPE} needs exactly one input image")
        work = f"{request.user_id}/ci/{request.task_id}"
        output_key = f"{work}/clean.jpg"
        operations = json.dumps(
            {"is_pic_info": 0, "rules": [{"fileid": f"/{output_key}", "rule": self.rule}]}
        )
        job_id = f"ci:{request.task_id}"
        work_input: str | None = None
        try:
            try:
                self._client.ci_image_process(
                    Bucket=self.bucket, Key=request.input_keys[0], PicOperations=operations
                )
            except CosServiceError as exc:
                if not _missing(exc) or not request.inputs:
                    raise
                work_input = f"{work}/input"
                self._client.ci_put_object(
                    Bucket=self.bucket,
                    Body=bytes(request.inputs[0]),
                    Key=work_input,
                    PicOperations=operations,
                )
            response = self._client.get_object(Bucket=self.bucket, Key=output_key)
            data: bytes = response["Body"].get_raw_stream().read()
            content_type = _header(response, "Content-Type") or "image/jpeg"
        except CosServiceError as exc:
            return self._failure(job_id, exc)
        except CosClientError as exc:
            raise ProviderUnavailable(
                f"Tencent Cloud Infinite unreachable: {type(exc).__name__}"
            ) from exc
        finally:
            self._discard(output_key, work_input)
        return GenerationResult(
            state=GenerationState.SUCCEEDED,
            provider_job_id=job_id,
            outputs=(GeneratedOutput(content_type=content_type, data=data),),
        )

    def poll(self, provider_job_id: str) -> GenerationResult:
        raise ProviderRejected("Tencent Cloud Infinite is synchronous: nothing to poll")

    def cancel(self, provider_job_id: str) -> None:
        return None  # synchronous: nothing runs after submit

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> GenerationNotification:
        raise InvalidNotification("Tencent Cloud Infinite sends no notifications")

    def _failure(self, job_id: str, exc: CosServiceError) -> GenerationResult:
        status, code = exc.get_status_code(), exc.get_error_code()
        if status in (401, 403):
            raise ProviderRejected(
                f"Tencent Cloud Infinite refused our keys ({status} {code}): check COS_SECRET_ID, "
                "COS_SECRET_KEY, COS_BUCKET and the bucket's CI binding"
            ) from exc
        if status == 429 or status >= 500:
            raise ProviderUnavailable(f"Tencent Cloud Infinite: {status} {code}") from exc
        return GenerationResult(
            state=GenerationState.FAILED,
            provider_job_id=job_id,
            error=f"Tencent Cloud Infinite could not process the image ({code})",
        )

    def _discard(self, *keys: str | None) -> None:
        for key in keys:
            if key is None:
                continue
            # A leftover work object is harmless; a bucket lifecycle rule on */ci/ removes it.
            with contextlib.suppress(CosServiceError, CosClientError):
                self._client.delete_object(Bucket=self.bucket, Key=key)


def _missing(exc: CosServiceError) -> bool:
    return bool(exc.get_error_code() in _MISSING or exc.get_status_code() == 404)


def _header(response: Any, name: str) -> str:
    lowered = name.lower()
    for key, value in dict(response).items():
        if str(key).lower() == lowered:
            return str(value)
    return ""

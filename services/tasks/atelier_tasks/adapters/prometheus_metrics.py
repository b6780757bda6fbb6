"""Task metrics for Prometheus (one registry per wired app, so tests can build many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server


class PrometheusTaskMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._finished = Counter(
            "atelier_tasks_finished_total",
            "Tasks that reached a terminal state and were settled with billing.",
            ["type", "status", "reason"],
            registry=self.registry,
        )
        self._provider_calls = Histogram(
            "atelier_tasks_provider_call_seconds",
            "Calls to generation providers, by call and outcome.",
            ["provider", "call", "outcome"],
            registry=self.registry,
        )

    def task_finished(self, task_type: str, status: str, reason: str | None) -> None:
        self._finished.labels(task_type, status, reason or "").inc()

    def provider_call(self, provider: str, call: str, outcome: str, seconds: float) -> None:
        self._provider_calls.labels(provider, call, outcome).observe(seconds)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` over HTTP (a daemon thread)."""
        start_http_server(port, addr=host, registry=self.registry)

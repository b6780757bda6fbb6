"""Delivers outgoing notifications by HTTP POST (the local provider's webhook calls)."""

from __future__ import annotations

import urllib.error
import urllib.request

from atelier_billing.application.ports.payments import OutgoingNotification
from atelier_ports.errors import ProviderUnavailable


class UrllibNotificationSender:
    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self._timeout = timeout_seconds

    def send(self, notification: OutgoingNotification) -> int:
        request = urllib.request.Request(
            notification.url,
            data=notification.body,
            headers=dict(notification.headers),
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (urllib.error.URLError, OSError) as exc:
            raise ProviderUnavailable(f"could not deliver to {notification.url}") from exc

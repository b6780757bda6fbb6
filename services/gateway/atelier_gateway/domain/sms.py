"""Log-in codes sent by SMS (F2): one challenge per phone number and the rules it keeps.

A challenge holds the phone's current code (its hash, never the code), how often it was guessed
wrong, and the phone's sending budget (at most one code a minute, ``daily_limit`` in a 24-hour
window). A ``SendWindow`` counts the codes one client address asked for in the current hour. Both
are changed only under a row lock (see the unit of work), so the limits hold under concurrency.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from atelier_gateway.domain.errors import SmsRateLimited

CODE_DIGITS = 6


@dataclass(frozen=True, slots=True)
class SmsRules:
    code_ttl: timedelta = timedelta(minutes=5)
    max_wrong_attempts: int = 5
    resend_interval: timedelta = timedelta(minutes=1)
    daily_limit: int = 10
    daily_window: timedelta = timedelta(days=1)
    address_limit_per_hour: int = 20  # 0 = no per-address limit

    @property
    def minutes_valid(self) -> int:
        return math.ceil(self.code_ttl.total_seconds() / 60)


class Verdict(enum.Enum):
    ACCEPTED = "accepted"  # the code was right; it is now used up
    WRONG = "wrong"  # a wrong guess, counted
    LOCKED = "locked"  # too many wrong guesses: this code is dead, ask for a new one
    NO_CODE = "no_code"  # none sent, expired, or already used


def _wait(until: datetime, now: datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds()))


@dataclass(slots=True)
class SmsChallenge:
    phone: str  # E.164
    code_hash: str | None = None
    expires_at: datetime | None = None
    wrong_attempts: int = 0
    last_sent_at: datetime | None = None
    window_started_at: datetime | None = None
    window_sends: int = 0

    def check_send(self, now: datetime, rules: SmsRules) -> None:
        """Raise ``SmsRateLimited`` (with the seconds to wait) past the phone's sending budget."""
        if self.last_sent_at is not None and now < self.last_sent_at + rules.resend_interval:
            raise SmsRateLimited(
                "a code was sent to this phone less than a minute ago",
                retry_after=_wait(self.last_sent_at + rules.resend_interval, now),
            )
        window_ends = self._window_end(rules)
        if window_ends is not None and now < window_ends and self.window_sends >= rules.daily_limit:
            raise SmsRateLimited(
                f"at most {rules.daily_limit} codes a day are sent to one phone",
                retry_after=_wait(window_ends, now),
            )

    def issue(self, code_hash: str, now: datetime, rules: SmsRules) -> None:
        """A new code replaces the previous one (whose wrong guesses no longer count)."""
        self.check_send(now, rules)
        window_ends = self._window_end(rules)
        if window_ends is None or now >= window_ends:
            self.window_started_at = now
            self.window_sends = 0
        self.window_sends += 1
        self.last_sent_at = now
        self.code_hash = code_hash
        self.expires_at = now + rules.code_ttl
        self.wrong_attempts = 0

    def verify(self, now: datetime, rules: SmsRules, *, matches: bool) -> Verdict:
        """Judge one attempt. ``matches`` is the caller's constant-time comparison of the offered
        code's hash with ``code_hash``; a right code is used up at once (single use)."""
        if self.code_hash is None:
            return Verdict.NO_CODE
        if self.wrong_attempts >= rules.max_wrong_attempts:
            return Verdict.LOCKED
        if self.expires_at is None or now >= self.expires_at:
            return Verdict.NO_CODE
        if not matches:
            self.wrong_attempts += 1
            return Verdict.WRONG
        self.code_hash = None
        self.expires_at = None
        return Verdict.ACCEPTED

    def _window_end(self, rules: SmsRules) -> datetime | None:
        if self.window_started_at is None:
            return None
        return self.window_started_at + rules.daily_window


@dataclass(slots=True)
class SendWindow:
    """Codes asked for from one client address (hashed) in the current hour."""

    address: str
    started_at: datetime | None = None
    sends: int = 0

    def count(self, now: datetime, limit_per_hour: int) -> None:
        hour = timedelta(hours=1)
        if self.started_at is None or now >= self.started_at + hour:
            self.started_at = now
            self.sends = 0
        if self.sends >= limit_per_hour:
            raise SmsRateLimited(
                "too many codes were asked for from this address",
                retry_after=_wait(self.started_at + hour, now),
            )
        self.sends += 1

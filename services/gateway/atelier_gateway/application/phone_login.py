"""Phone + SMS log-in (F2): sending a code, and logging in (or adding the phone to the signed-in
account) with it.

Codes are 6 digits from the ``OneTimeCodes`` port (a CSPRNG), stored only as an HMAC keyed with a
server secret, valid ``SmsRules.code_ttl``, used up by the first right answer, and dead after
``max_wrong_attempts`` wrong ones. Every decision about a phone is taken while holding its
challenge row (``SmsChallengeRepository.lock``), so concurrent sends and answers for one phone are
serialised: the sending limits hold, a code is accepted once, and the first log-in creates one
user. A send the provider refuses is undone, so it changes nothing (no limit used, the previous
code still valid).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace
from datetime import datetime

from atelier_gateway.application.accounts import BillingAccountSetUp
from atelier_gateway.application.ports import (
    GatewayUnitOfWork,
    GatewayUnitOfWorkFactory,
    OneTimeCodes,
    PhoneNumbers,
    Sms,
)
from atelier_gateway.application.sessions import Session, SessionIssuer
from atelier_gateway.domain.errors import CodeLocked, InvalidCode, PhoneTaken, UserNotFound
from atelier_gateway.domain.model import Role, User
from atelier_gateway.domain.sms import SendWindow, SmsChallenge, SmsRules, Verdict
from atelier_ports.clock import Clock
from atelier_ports.ids import IdGenerator
from atelier_ports.problems import Unavailable


@dataclass(frozen=True, slots=True)
class CodeRequest:
    phone: str
    address: str  # the client's network address, for the per-address limit (stored hashed)


@dataclass(frozen=True, slots=True)
class CodeAnswer:
    phone: str
    code: str
    user_id: str | None = None  # signed in: the phone is added to this account


def code_hash(key: bytes, phone: str, code: str) -> str:
    # Keyed: six digits are a million guesses, so a plain hash of a leaked row would give the
    # code away at once; the key stays in the gateway's configuration, not its database.
    return hmac.new(key, f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()


def address_key(address: str) -> str:
    return hashlib.sha256(address.encode("utf-8", "surrogateescape")).hexdigest()


class SendLogInCode:
    """Send a fresh code to the phone, within the limits; answers the E.164 number."""

    def __init__(
        self,
        *,
        uow: GatewayUnitOfWorkFactory,
        sms: Sms,
        phones: PhoneNumbers,
        codes: OneTimeCodes,
        clock: Clock,
        rules: SmsRules,
        code_key: bytes,
    ) -> None:
        self._uow = uow
        self._sms = sms
        self._phones = phones
        self._codes = codes
        self._clock = clock
        self._rules = rules
        self._key = code_key

    @property
    def rules(self) -> SmsRules:
        return self._rules

    def __call__(self, request: CodeRequest) -> str:
        phone = self._phones.normalise(request.phone)
        code = self._codes.new_code()
        issued = code_hash(self._key, phone, code)
        now = self._clock.now()
        window: SendWindow | None = None
        with self._uow() as uow:
            challenge = uow.sms_challenges.lock(phone)
            before = replace(challenge)
            challenge.issue(issued, now, self._rules)  # raises SmsRateLimited
            if self._rules.address_limit_per_hour > 0:
                window = uow.sms_challenges.lock_window(address_key(request.address))
                window.count(now, self._rules.address_limit_per_hour)
                uow.sms_challenges.save_window(window)
            uow.sms_challenges.save(challenge)
            uow.commit()
        try:
            self._sms.send_code(phone, code, self._rules.minutes_valid)
        except Exception:
            self._undo(before, issued, window)
            raise
        return phone

    def _undo(self, before: SmsChallenge, issued: str, window: SendWindow | None) -> None:
        """Put back what the failed send changed, unless another send has changed it since."""
        with self._uow() as uow:
            current = uow.sms_challenges.get_locked(before.phone)
            if current is not None and current.code_hash == issued:
                uow.sms_challenges.save(before)
            if window is not None:
                now_window = uow.sms_challenges.lock_window(window.address)
                if now_window.started_at == window.started_at and now_window.sends > 0:
                    now_window.sends -= 1
                    uow.sms_challenges.save_window(now_window)
            uow.commit()


class LogInWithCode:
    """Check the code; log in the phone's user (created on the first log-in, with the sign-up
    bonus once), or — signed in — add the phone to the caller's account."""

    def __init__(
        self,
        *,
        uow: GatewayUnitOfWorkFactory,
        phones: PhoneNumbers,
        billing_set_up: BillingAccountSetUp,
        sessions: SessionIssuer,
        clock: Clock,
        ids: IdGenerator,
        rules: SmsRules,
        code_key: bytes,
    ) -> None:
        self._uow = uow
        self._phones = phones
        self._billing_set_up = billing_set_up
        self._sessions = sessions
        self._clock = clock
        self._ids = ids
        self._rules = rules
        self._key = code_key

    def __call__(self, answer: CodeAnswer) -> Session:
        phone = self._phones.normalise(answer.phone)
        offered = code_hash(self._key, phone, answer.code)
        now = self._clock.now()
        with self._uow() as uow:
            challenge = uow.sms_challenges.get_locked(phone)
            if challenge is None:
                raise InvalidCode("no code was sent to this phone; ask for a new one")
            matches = hmac.compare_digest(challenge.code_hash or "", offered)
            expires_at = challenge.expires_at
            verdict = challenge.verify(now, self._rules, matches=matches)
            if verdict is Verdict.LOCKED:
                raise CodeLocked("too many wrong codes; ask for a new one")
            if verdict is Verdict.NO_CODE:
                raise InvalidCode("the code has expired or was already used; ask for a new one")
            uow.sms_challenges.save(challenge)
            if verdict is Verdict.WRONG:
                uow.commit()
                left = self._rules.max_wrong_attempts - challenge.wrong_attempts
                raise InvalidCode(
                    f"wrong code; {left} more tries" if left else "wrong code; ask for a new one"
                )
            # A refusal below rolls back, so the code stays valid.
            user = self._owner(uow, phone, answer.user_id)
            uow.commit()
        try:
            self._billing_set_up(user)
        except Unavailable:
            # Billing is down: answer 503 with the code still valid (the user, if just made, is
            # kept and gets its billing account at the next log-in).
            self._give_back(phone, offered, expires_at)
            raise
        return self._sessions.start(user)

    def _give_back(self, phone: str, offered: str, expires_at: datetime | None) -> None:
        with self._uow() as uow:
            challenge = uow.sms_challenges.get_locked(phone)
            if challenge is None or challenge.code_hash is not None:
                return  # a new code was sent since: that one counts
            challenge.code_hash, challenge.expires_at = offered, expires_at
            uow.sms_challenges.save(challenge)
            uow.commit()

    def _owner(self, uow: GatewayUnitOfWork, phone: str, user_id: str | None) -> User:
        holder = uow.users.get_by_phone(phone)
        if user_id is not None:
            user = uow.users.get(user_id)
            if user is None:
                raise UserNotFound("user not found")
            if holder is not None and holder.id != user.id:
                raise PhoneTaken("this phone number belongs to another account")
            if user.phone != phone:
                user.phone = phone
                uow.users.save(user)
            return user
        if holder is not None:
            return holder
        user = User(
            id=self._ids.new_id("usr"),
            email=None,
            password_hash=None,
            role=Role.USER,
            created_at=self._clock.now(),
            phone=phone,
        )
        try:
            uow.users.add(user)
        except PhoneTaken:
            # Someone else's first log-in won the race (outside the challenge lock): use it.
            holder = uow.users.get_by_phone(phone)
            if holder is None:
                raise
            return holder
        return user

"""Phone + SMS log-in (F2) on fakes of every port: codes, locks, expiry, single use, the sending
limits, undoing a failed send, first log-in and adding a phone to an email account."""

from __future__ import annotations

import logging
import os
from datetime import timedelta

import pytest
from pydantic import ValidationError

from atelier_gateway.adapters.phone_numbers import LibPhoneNumbers
from atelier_gateway.adapters.sms import ConsoleSms, SecretsOneTimeCodes, masked, split_endpoint
from atelier_gateway.application.accounts import BillingAccountSetUp, NewAccount, SignUp
from atelier_gateway.application.phone_login import (
    CodeAnswer,
    CodeRequest,
    LogInWithCode,
    SendLogInCode,
    code_hash,
)
from atelier_gateway.application.profiles import PromoteAdmin
from atelier_gateway.application.sessions import SessionIssuer
from atelier_gateway.domain.errors import (
    CodeLocked,
    InvalidCode,
    PhoneTaken,
    SmsNotDelivered,
    SmsRateLimited,
)
from atelier_gateway.domain.model import Role
from atelier_gateway.domain.sms import SmsRules
from atelier_gateway.settings import GatewaySettings
from atelier_ports.problems import InvalidArgument, Unavailable
from tests.gateway.fakes import (
    FakeBillingAccounts,
    FakeCodes,
    FakeGatewayUnitOfWork,
    FakePasswordHasher,
    FakePhoneNumbers,
    FakeSecrets,
    FakeSms,
    FakeTokens,
)
from tests.support.fakes import FakeClock, FakeIds

PHONE = "+8613800138000"
KEY = b"k" * 32


class PhoneCore:
    """The phone log-in use cases wired to fakes, as ``bootstrap`` wires them."""

    def __init__(self, rules: SmsRules | None = None) -> None:
        self.uow = FakeGatewayUnitOfWork()
        self.clock = FakeClock()
        self.sms = FakeSms()
        self.codes = FakeCodes()
        self.billing = FakeBillingAccounts()
        self.rules = rules or SmsRules(address_limit_per_hour=0)
        ids = FakeIds()
        phones = FakePhoneNumbers()
        sessions = SessionIssuer(
            uow=self.uow,
            tokens=FakeTokens(),
            secrets=FakeSecrets(),
            clock=self.clock,
            ids=ids,
            refresh_lifetime=timedelta(days=1),
        )
        set_up = BillingAccountSetUp(uow=self.uow, billing=self.billing)
        self.send = SendLogInCode(
            uow=self.uow,
            sms=self.sms,
            phones=phones,
            codes=self.codes,
            clock=self.clock,
            rules=self.rules,
            code_key=KEY,
        )
        self.verify = LogInWithCode(
            uow=self.uow,
            phones=phones,
            billing_set_up=set_up,
            sessions=sessions,
            clock=self.clock,
            ids=ids,
            rules=self.rules,
            code_key=KEY,
        )
        self.sign_up = SignUp(
            uow=self.uow,
            hasher=FakePasswordHasher(),
            billing_set_up=set_up,
            sessions=sessions,
            clock=self.clock,
            ids=ids,
        )

    def send_code(self, phone: str = PHONE, address: str = "10.0.0.1") -> str:
        self.send(CodeRequest(phone, address))
        return self.sms.last_code(phone)


@pytest.fixture
def core() -> PhoneCore:
    return PhoneCore()


def test_the_code_is_sent_with_its_minutes_and_stored_only_as_a_keyed_hash(
    core: PhoneCore,
) -> None:
    assert core.send(CodeRequest("138 0013 8000", "10.0.0.1")) == PHONE
    assert core.sms.sent == [(PHONE, "123456", 5)]
    stored = core.uow.sms_challenges.rows[PHONE]
    assert stored.code_hash == code_hash(KEY, PHONE, "123456")
    assert "123456" not in repr(stored)
    assert stored.expires_at == core.clock.now() + timedelta(minutes=5)


def test_first_log_in_creates_the_user_with_the_bonus_once(core: PhoneCore) -> None:
    session = core.verify(CodeAnswer(PHONE, core.send_code()))
    user = core.uow.users.get(session.user.id)
    assert user is not None and user.phone == PHONE and user.email is None
    assert user.password_hash is None and user.role is Role.USER and user.billing_ready
    assert core.billing.calls == [(user.id, None, None)]
    core.clock.advance(minutes=1)
    again = core.verify(CodeAnswer(PHONE, core.send_code()))
    assert again.user.id == user.id
    assert len(core.uow.users.rows) == 1 and core.billing.created == {user.id}


def test_five_wrong_codes_lock_the_code_even_for_the_right_one(core: PhoneCore) -> None:
    code = core.send_code()
    for left in (4, 3, 2, 1, 0):
        with pytest.raises(InvalidCode) as info:
            core.verify(CodeAnswer(PHONE, "000000"))
        assert str(left) in info.value.message or "ask for a new one" in info.value.message
    with pytest.raises(CodeLocked):
        core.verify(CodeAnswer(PHONE, code))
    assert core.uow.users.rows == {}
    # A new code (after the minute) starts over.
    core.clock.advance(minutes=1)
    assert core.verify(CodeAnswer(PHONE, core.send_code())).user.id


def test_an_expired_code_is_refused(core: PhoneCore) -> None:
    code = core.send_code()
    core.clock.advance(minutes=5)
    with pytest.raises(InvalidCode, match="expired"):
        core.verify(CodeAnswer(PHONE, code))
    assert core.uow.users.rows == {}


def test_a_code_is_accepted_once(core: PhoneCore) -> None:
    code = core.send_code()
    core.verify(CodeAnswer(PHONE, code))
    with pytest.raises(InvalidCode, match="already used"):
        core.verify(CodeAnswer(PHONE, code))


def test_only_the_latest_code_counts(core: PhoneCore) -> None:
    first = core.send_code()
    core.clock.advance(minutes=1)
    second = core.send_code()
    with pytest.raises(InvalidCode):
        core.verify(CodeAnswer(PHONE, first))
    assert core.verify(CodeAnswer(PHONE, second)).user.phone == PHONE


def test_a_phone_never_sent_a_code_is_an_invalid_code(core: PhoneCore) -> None:
    with pytest.raises(InvalidCode):
        core.verify(CodeAnswer(PHONE, "123456"))
    assert core.uow.sms_challenges.rows == {}


def test_one_code_a_minute_per_phone(core: PhoneCore) -> None:
    core.send_code()
    core.clock.advance(seconds=59)
    with pytest.raises(SmsRateLimited) as info:
        core.send(CodeRequest(PHONE, "10.0.0.2"))
    assert info.value.retry_after == 1
    assert len(core.sms.sent) == 1
    core.clock.advance(seconds=1)
    core.send_code()
    assert len(core.sms.sent) == 2


def test_ten_codes_a_day_per_phone(core: PhoneCore) -> None:
    for _ in range(10):
        core.send_code()
        core.clock.advance(minutes=2)
    with pytest.raises(SmsRateLimited, match="a day") as info:
        core.send(CodeRequest(PHONE, "10.0.0.1"))
    assert info.value.retry_after == 24 * 3600 - 20 * 60
    assert len(core.sms.sent) == 10
    core.clock.advance(seconds=info.value.retry_after)
    core.send_code()
    assert len(core.sms.sent) == 11


def test_codes_per_address_per_hour() -> None:
    core = PhoneCore(SmsRules(address_limit_per_hour=3))
    for n in range(3):
        core.send_code(f"+861380013800{n}", "10.0.0.9")
    with pytest.raises(SmsRateLimited, match="address"):
        core.send(CodeRequest("+8613800138009", "10.0.0.9"))
    core.send_code("+8613800138009", "10.0.0.10")  # another address is not limited
    assert "+8613800138009" not in [p for p, _, _ in core.sms.sent[:3]]
    core.clock.advance(hours=1)
    core.send_code("+8613800138008", "10.0.0.9")
    assert len(core.sms.sent) == 5


def test_a_refused_send_changes_nothing(core: PhoneCore) -> None:
    old = core.send_code()
    before = core.uow.sms_challenges.rows[PHONE]
    core.clock.advance(minutes=1)
    core.sms.error = SmsNotDelivered("provider says no")
    with pytest.raises(SmsNotDelivered):
        core.send(CodeRequest(PHONE, "10.0.0.1"))
    assert core.uow.sms_challenges.rows[PHONE] == before
    core.sms.error = None
    # The limits were not used up and the previous code still works.
    assert core.verify(CodeAnswer(PHONE, old)).user.phone == PHONE
    core.send_code()


def test_a_refused_send_gives_back_the_address_budget() -> None:
    core = PhoneCore(SmsRules(address_limit_per_hour=1))
    core.sms.error = SmsNotDelivered("down")
    with pytest.raises(SmsNotDelivered):
        core.send(CodeRequest(PHONE, "10.0.0.1"))
    core.sms.error = None
    core.send_code(PHONE, "10.0.0.1")
    assert core.uow.sms_challenges.rows[PHONE].window_sends == 1


def test_an_email_account_adds_a_verified_phone(core: PhoneCore) -> None:
    account = core.sign_up(NewAccount("ada@example.com", "long enough"))
    session = core.verify(CodeAnswer(PHONE, core.send_code(), user_id=account.user.id))
    assert session.user.id == account.user.id
    stored = core.uow.users.get(account.user.id)
    assert stored is not None and stored.phone == PHONE and stored.email == "ada@example.com"
    # From now on the phone logs in to the same account.
    core.clock.advance(minutes=1)
    assert core.verify(CodeAnswer(PHONE, core.send_code())).user.id == account.user.id
    assert len(core.uow.users.rows) == 1


def test_a_phone_of_another_account_is_not_taken_over(core: PhoneCore) -> None:
    owner = core.verify(CodeAnswer(PHONE, core.send_code())).user
    other = core.sign_up(NewAccount("bo@example.com", "long enough")).user
    core.clock.advance(minutes=1)
    code = core.send_code()
    with pytest.raises(PhoneTaken):
        core.verify(CodeAnswer(PHONE, code, user_id=other.id))
    stored = core.uow.users.get(other.id)
    assert stored is not None and stored.phone is None
    # Nothing was used up: the code still logs the owner in.
    assert core.verify(CodeAnswer(PHONE, code)).user.id == owner.id


def test_promote_admin_finds_a_phone_only_user(core: PhoneCore) -> None:
    user = core.verify(CodeAnswer(PHONE, core.send_code())).user
    promoted = PromoteAdmin(uow=core.uow, phones=FakePhoneNumbers())("13800138000")
    assert promoted.id == user.id and promoted.role is Role.ADMIN


# --- adapters without I/O ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("13800138000", "+8613800138000"),
        ("138 0013 8000", "+8613800138000"),
        ("+86 138-0013-8000", "+8613800138000"),
        ("+1 650 253 0000", "+16502530000"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_phone_numbers_are_normalised_to_e164(raw: str, e164: str) -> None:
    assert LibPhoneNumbers().normalise(raw) == e164


@pytest.mark.parametrize("raw", ["", "hello", "12345", "+86 123", "+999 1234567", "1" * 40])
def test_invalid_phone_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        LibPhoneNumbers().normalise(raw)
    assert info.value.field == "phone"


def test_codes_are_six_digits() -> None:
    codes = {SecretsOneTimeCodes().new_code() for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert len(codes) > 150  # random, not a counter


def test_the_console_adapter_logs_the_code_it_does_not_send(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="atelier.gateway.sms"):
        ConsoleSms().send_code(PHONE, "654321", 5)
    (record,) = caplog.records
    assert record.fields == {"phone": PHONE, "code": "654321", "minutes_valid": 5}  # type: ignore[attr-defined]


def test_endpoint_setting() -> None:
    assert split_endpoint("sms.tencentcloudapi.com") == ("https", "sms.tencentcloudapi.com")
    assert split_endpoint("http://127.0.0.1:8123") == ("http", "127.0.0.1:8123")
    assert split_endpoint("https://sms.internal/") == ("https", "sms.internal")
    with pytest.raises(ValueError):
        split_endpoint("ftp://x")
    assert masked(PHONE) == "+86138****8000"


def test_sms_provider_defaults_by_market_and_names_missing_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("SMS_PROVIDER", "MARKET", "GATEWAY_JWT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    for var in [v for v in os.environ if v.startswith("TENCENT_SMS_")]:
        monkeypatch.delenv(var)
    assert GatewaySettings(MARKET="local").sms_provider_name() == "console"
    assert GatewaySettings(MARKET="global").sms_provider_name() == "console"
    assert GatewaySettings(MARKET="cn").sms_provider_name() == "tencent"
    assert GatewaySettings(MARKET="cn", SMS_PROVIDER="console").missing_settings() == []
    assert GatewaySettings(SMS_PROVIDER="tencent").missing_settings() == [
        "TENCENT_SMS_SECRET_ID",
        "TENCENT_SMS_SECRET_KEY",
        "TENCENT_SMS_SDK_APP_ID",
        "TENCENT_SMS_SIGN_NAME",
        "TENCENT_SMS_TEMPLATE_ID",
    ]
    complete = GatewaySettings(
        SMS_PROVIDER="tencent",
        TENCENT_SMS_SECRET_ID="id",
        TENCENT_SMS_SECRET_KEY="s3cr3t-sms-key",
        TENCENT_SMS_SDK_APP_ID="1400000000",
        TENCENT_SMS_SIGN_NAME="Atelier",
        TENCENT_SMS_TEMPLATE_ID="1",
    )
    assert complete.missing_settings() == []
    assert complete.tencent_sms_region == "ap-guangzhou"
    assert complete.tencent_sms_endpoint == "sms.tencentcloudapi.com"
    assert "s3cr3t-sms-key" not in repr(complete)
    local = GatewaySettings(TENCENT_SMS_ENDPOINT="http://127.0.0.1:8123")
    assert local.tencent_sms_endpoint == "http://127.0.0.1:8123"
    with pytest.raises(ValidationError):
        GatewaySettings(TENCENT_SMS_ENDPOINT="ftp://sms.example")
    with pytest.raises(ValidationError):
        GatewaySettings(SMS_PROVIDER="carrier-pigeon")


def test_billing_down_answers_unavailable_and_keeps_the_code(core: PhoneCore) -> None:
    code = core.send_code()
    core.billing.fail = True
    with pytest.raises(Unavailable):
        core.verify(CodeAnswer(PHONE, code))
    core.billing.fail = False
    session = core.verify(CodeAnswer(PHONE, code))
    stored = core.uow.users.get(session.user.id)
    assert stored is not None and stored.billing_ready and len(core.uow.users.rows) == 1
    assert core.billing.created == {session.user.id}

"""The gateway core (use cases) on fakes of its ports: no database, no network."""

from __future__ import annotations

from datetime import timedelta

import pytest

from atelier_gateway.application.accounts import (
    BillingAccountSetUp,
    Credentials,
    LogIn,
    NewAccount,
    SignUp,
)
from atelier_gateway.application.idempotency import IdempotencyKeys
from atelier_gateway.application.profiles import ProfileChanges, PromoteAdmin, UpdateProfile
from atelier_gateway.application.sessions import (
    Authenticate,
    LogOut,
    RefreshSession,
    SessionIssuer,
)
from atelier_gateway.domain.errors import (
    EmailTaken,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidAccessToken,
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshTokenReused,
)
from atelier_gateway.domain.model import Role
from atelier_ports.problems import InvalidArgument, Unavailable
from tests.gateway.fakes import (
    FakeBillingAccounts,
    FakeGatewayUnitOfWork,
    FakePasswordHasher,
    FakePhoneNumbers,
    FakeSecrets,
    FakeTokens,
)
from tests.support.fakes import FakeClock, FakeIds


class Core:
    """The use cases wired to fakes, as ``bootstrap`` wires them to the real adapters."""

    def __init__(self) -> None:
        self.uow = FakeGatewayUnitOfWork()
        self.clock = FakeClock()
        self.hasher = FakePasswordHasher()
        self.billing = FakeBillingAccounts()
        tokens = FakeTokens()
        secrets = FakeSecrets()
        sessions = SessionIssuer(
            uow=self.uow,
            tokens=tokens,
            secrets=secrets,
            clock=self.clock,
            ids=FakeIds(),
            refresh_lifetime=timedelta(days=1),
        )
        set_up = BillingAccountSetUp(uow=self.uow, billing=self.billing)
        self.sign_up = SignUp(
            uow=self.uow,
            hasher=self.hasher,
            billing_set_up=set_up,
            sessions=sessions,
            clock=self.clock,
            ids=FakeIds(),
        )
        self.log_in = LogIn(
            uow=self.uow,
            hasher=self.hasher,
            secrets=secrets,
            billing_set_up=set_up,
            sessions=sessions,
        )
        self.refresh = RefreshSession(uow=self.uow, sessions=sessions, clock=self.clock)
        self.log_out = LogOut(uow=self.uow, clock=self.clock)
        self.authenticate = Authenticate(tokens=tokens, clock=self.clock)
        self.update_profile = UpdateProfile(uow=self.uow, billing=self.billing)
        self.promote_admin = PromoteAdmin(uow=self.uow, phones=FakePhoneNumbers())
        self.idempotency = IdempotencyKeys(self.uow, self.clock)


@pytest.fixture
def core() -> Core:
    return Core()


def test_sign_up_normalises_hashes_and_sets_up_billing_once(core: Core) -> None:
    session = core.sign_up(NewAccount(" Ann@Example.COM ", "long enough", "Ann"))
    stored = core.uow.users.get(session.user.id)
    assert stored is not None and stored.email == "ann@example.com"
    assert stored.password_hash == "hashed:long enough" and stored.billing_ready
    assert core.billing.calls == [(session.user.id, "ann@example.com", "Ann")]
    core.log_in(Credentials("ann@example.com", "long enough"))
    assert len(core.billing.calls) == 1
    with pytest.raises(EmailTaken):
        core.sign_up(NewAccount("ANN@example.com", "long enough"))


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [("nope", "long enough", "email"), ("a@b.co", "short", "password")],
)
def test_sign_up_validates_before_storing(
    core: Core, email: str, password: str, field: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        core.sign_up(NewAccount(email, password))
    assert info.value.field == field
    assert core.uow.users.rows == {}


def test_unknown_email_costs_a_hash_check_too(core: Core) -> None:
    core.sign_up(NewAccount("bo@example.com", "long enough"))
    before = core.hasher.verified
    for email, password in (("bo@example.com", "wrong one"), ("ghost@example.com", "x")):
        with pytest.raises(InvalidCredentials):
            core.log_in(Credentials(email, password))
    assert core.hasher.verified == before + 2


def test_refresh_rotates_and_reuse_revokes_the_family(core: Core) -> None:
    first = core.sign_up(NewAccount("cy@example.com", "long enough"))
    second = core.refresh(first.refresh_token)
    with pytest.raises(RefreshTokenReused):
        core.refresh(first.refresh_token)
    with pytest.raises(InvalidRefreshToken):
        core.refresh(second.refresh_token)
    with pytest.raises(InvalidRefreshToken):
        core.refresh("never-issued")


def test_refresh_tokens_expire_and_log_out_revokes(core: Core) -> None:
    a = core.sign_up(NewAccount("di@example.com", "long enough"))
    b = core.log_in(Credentials("di@example.com", "long enough"))
    core.log_out(b.refresh_token)
    with pytest.raises(InvalidRefreshToken):
        core.refresh(b.refresh_token)
    core.clock.advance(days=2)
    with pytest.raises(InvalidRefreshToken):
        core.refresh(a.refresh_token)
    with pytest.raises(InvalidAccessToken):
        core.authenticate(a.access_token)


def test_billing_down_leaves_the_user_to_retry_at_log_in(core: Core) -> None:
    core.billing.fail = True
    with pytest.raises(Unavailable):
        core.sign_up(NewAccount("ed@example.com", "long enough"))
    user = core.uow.users.get_by_email("ed@example.com")
    assert user is not None and not user.billing_ready
    core.billing.fail = False
    core.log_in(Credentials("ed@example.com", "long enough"))
    user = core.uow.users.get_by_email("ed@example.com")
    assert user is not None and user.billing_ready


def test_profile_changes_and_promotion(core: Core) -> None:
    s = core.sign_up(NewAccount("fi@example.com", "long enough"))
    user = core.update_profile(ProfileChanges(s.user.id, name=" Fi ", preferences={"lang": "en"}))
    assert user.name == "Fi" and user.preferences == {"lang": "en"}
    with pytest.raises(InvalidArgument):
        core.update_profile(ProfileChanges(s.user.id, avatar_url="ftp://x", avatar_url_set=True))
    assert core.promote_admin("FI@example.com").role is Role.ADMIN
    assert core.refresh(s.refresh_token).user.role is Role.ADMIN


def test_idempotency_replays_conflicts_and_takes_over_stale_claims(core: Core) -> None:
    svc = core.idempotency
    assert svc.begin("u1", "k", "POST /v1/orders", b"{}") is None
    with pytest.raises(IdempotencyKeyInFlight):
        svc.begin("u1", "k", "POST /v1/orders", b"{}")
    svc.complete("u1", "k", 201, b'{"id": "o1"}')
    replay = svc.begin("u1", "k", "POST /v1/orders", b"{}")
    assert replay is not None and (replay.status, replay.body) == (201, b'{"id": "o1"}')
    with pytest.raises(IdempotencyKeyReused):
        svc.begin("u1", "k", "POST /v1/orders", b'{"other": 1}')
    assert svc.begin("u2", "k", "POST /v1/orders", b"{}") is None  # keys are per user

    assert svc.begin("u1", "crash", "POST /v1/tasks", b"{}") is None
    core.clock.advance(minutes=5)
    assert svc.begin("u1", "crash", "POST /v1/tasks", b"{}") is None  # taken over
    with pytest.raises(InvalidArgument):
        svc.begin("u1", "", "POST /v1/tasks", b"{}")

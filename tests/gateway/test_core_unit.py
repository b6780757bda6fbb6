"""The gateway core (use cases) on fakes of its ports: no database, no network."""

from __future__ import annotations

from datetime import timedelta

import pytest

from atelier_gateway.application.auth import AuthService, ProfileChanges, SignUp
from atelier_gateway.application.idempotency import IdempotencyService
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
    FakeClock,
    FakeGatewayUnitOfWork,
    FakePasswordHasher,
    FakeSecrets,
    FakeTokens,
    SequentialIds,
)
from tests.gateway.harness import FakeBillingAccounts


class Core:
    def __init__(self) -> None:
        self.uow = FakeGatewayUnitOfWork()
        self.clock = FakeClock()
        self.hasher = FakePasswordHasher()
        self.billing = FakeBillingAccounts()
        self.auth = AuthService(
            uow=self.uow,
            hasher=self.hasher,
            tokens=FakeTokens(),
            secrets=FakeSecrets(),
            billing=self.billing,
            clock=self.clock,
            ids=SequentialIds(),
            refresh_lifetime=timedelta(days=1),
        )
        self.idempotency = IdempotencyService(self.uow, self.clock)


@pytest.fixture
def core() -> Core:
    return Core()


def test_sign_up_normalises_hashes_and_sets_up_billing_once(core: Core) -> None:
    session = core.auth.sign_up(SignUp(" Ann@Example.COM ", "long enough", "Ann"))
    stored = core.uow.users.get(session.user.id)
    assert stored is not None and stored.email == "ann@example.com"
    assert stored.password_hash == "hashed:long enough" and stored.billing_ready
    assert core.billing.calls == [(session.user.id, "ann@example.com", "Ann")]
    core.auth.log_in("ann@example.com", "long enough")
    assert len(core.billing.calls) == 1
    with pytest.raises(EmailTaken):
        core.auth.sign_up(SignUp("ANN@example.com", "long enough"))


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [("nope", "long enough", "email"), ("a@b.co", "short", "password")],
)
def test_sign_up_validates_before_storing(
    core: Core, email: str, password: str, field: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        core.auth.sign_up(SignUp(email, password))
    assert info.value.field == field
    assert core.uow.users.rows == {}


def test_unknown_email_costs_a_hash_check_too(core: Core) -> None:
    core.auth.sign_up(SignUp("bo@example.com", "long enough"))
    before = core.hasher.verified
    for email, password in (("bo@example.com", "wrong one"), ("ghost@example.com", "x")):
        with pytest.raises(InvalidCredentials):
            core.auth.log_in(email, password)
    assert core.hasher.verified == before + 2


def test_refresh_rotates_and_reuse_revokes_the_family(core: Core) -> None:
    first = core.auth.sign_up(SignUp("cy@example.com", "long enough"))
    second = core.auth.refresh(first.refresh_token)
    with pytest.raises(RefreshTokenReused):
        core.auth.refresh(first.refresh_token)
    with pytest.raises(InvalidRefreshToken):
        core.auth.refresh(second.refresh_token)
    with pytest.raises(InvalidRefreshToken):
        core.auth.refresh("never-issued")


def test_refresh_tokens_expire_and_log_out_revokes(core: Core) -> None:
    a = core.auth.sign_up(SignUp("di@example.com", "long enough"))
    b = core.auth.log_in("di@example.com", "long enough")
    core.auth.log_out(b.refresh_token)
    with pytest.raises(InvalidRefreshToken):
        core.auth.refresh(b.refresh_token)
    core.clock.current += timedelta(days=2)
    with pytest.raises(InvalidRefreshToken):
        core.auth.refresh(a.refresh_token)
    with pytest.raises(InvalidAccessToken):
        core.auth.authenticate(a.access_token)


def test_billing_down_leaves_the_user_to_retry_at_log_in(core: Core) -> None:
    core.billing.fail = True
    with pytest.raises(Unavailable):
        core.auth.sign_up(SignUp("ed@example.com", "long enough"))
    user = core.uow.users.get_by_email("ed@example.com")
    assert user is not None and not user.billing_ready
    core.billing.fail = False
    core.auth.log_in("ed@example.com", "long enough")
    assert core.uow.users.get_by_email("ed@example.com").billing_ready  # type: ignore[union-attr]


def test_profile_changes_and_promotion(core: Core) -> None:
    s = core.auth.sign_up(SignUp("fi@example.com", "long enough"))
    user = core.auth.update_profile(
        s.user.id, ProfileChanges(name=" Fi ", preferences={"lang": "en"})
    )
    assert user.name == "Fi" and user.preferences == {"lang": "en"}
    with pytest.raises(InvalidArgument):
        core.auth.update_profile(
            s.user.id, ProfileChanges(avatar_url="ftp://x", avatar_url_set=True)
        )
    assert core.auth.promote_admin("FI@example.com").role is Role.ADMIN
    assert core.auth.refresh(s.refresh_token).user.role is Role.ADMIN


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
    core.clock.current += timedelta(minutes=5)
    assert svc.begin("u1", "crash", "POST /v1/tasks", b"{}") is None  # taken over
    with pytest.raises(InvalidArgument):
        svc.begin("u1", "", "POST /v1/tasks", b"{}")

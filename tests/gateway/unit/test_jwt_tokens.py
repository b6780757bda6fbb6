"""The access-token adapter: verified claims are kept until the token expires, and a kept token is
refused exactly when a fresh verification would refuse it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from atelier_gateway.adapters.jwt_tokens import ISSUER, JwtAccessTokenIssuer
from atelier_gateway.domain.errors import InvalidAccessToken
from atelier_gateway.domain.model import Role

SECRET = "unit-test-secret-" + "s" * 64  # long enough for HS512 too
NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_a_kept_token_is_refused_once_it_expires() -> None:
    tokens = JwtAccessTokenIssuer(SECRET, lifetime_seconds=60)
    token = tokens.issue("usr_1", Role.ADMIN, NOW)
    first = tokens.verify(token, NOW)
    assert (first.user_id, first.role) == ("usr_1", Role.ADMIN)
    assert first.expires_at == NOW + timedelta(seconds=60)
    assert tokens.cached_tokens == 1
    assert tokens.verify(token, NOW + timedelta(seconds=59)) == first
    with pytest.raises(InvalidAccessToken, match="expired"):
        tokens.verify(token, NOW + timedelta(seconds=60))
    assert tokens.cached_tokens == 0  # dropped, and refused again from scratch
    with pytest.raises(InvalidAccessToken, match="expired"):
        tokens.verify(token, NOW + timedelta(seconds=61))


def test_an_expired_token_never_enters_the_cache() -> None:
    tokens = JwtAccessTokenIssuer(SECRET, lifetime_seconds=60)
    token = tokens.issue("usr_1", Role.USER, NOW)
    with pytest.raises(InvalidAccessToken, match="expired"):
        tokens.verify(token, NOW + timedelta(minutes=5))
    assert tokens.cached_tokens == 0


def test_the_cache_is_bounded_and_forgets_the_least_recently_used() -> None:
    tokens = JwtAccessTokenIssuer(SECRET, cached_tokens=2)
    a, b, c = (tokens.issue(f"usr_{n}", Role.USER, NOW) for n in "abc")
    tokens.verify(a, NOW)
    tokens.verify(b, NOW)
    tokens.verify(a, NOW)  # a is now the most recent
    tokens.verify(c, NOW)  # b goes
    assert tokens.cached_tokens == 2
    # Every one still verifies (b from scratch).
    assert [tokens.verify(t, NOW).user_id for t in (a, b, c)] == ["usr_a", "usr_b", "usr_c"]
    assert tokens.cached_tokens == 2


def _signed(claims: dict[str, object], key: str = SECRET, algorithm: str = "HS256") -> str:
    base: dict[str, object] = {
        "sub": "usr_1",
        "role": "user",
        "iss": ISSUER,
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 60,
        "typ": "access",
    }
    return jwt.encode({**base, **claims}, key, algorithm=algorithm)


@pytest.mark.parametrize(
    "token",
    [
        _signed({}, key="another-secret-" + "k" * 32),
        _signed({}, algorithm="HS512"),
        _signed({"typ": "refresh"}),
        _signed({"role": "root"}),
        _signed({"iss": "someone-else"}),
        _signed({"exp": "soon"}),
        "not.a.token",
    ],
)
def test_refused_tokens_are_refused_every_time_and_never_kept(token: str) -> None:
    tokens = JwtAccessTokenIssuer(SECRET)
    for _ in range(2):
        with pytest.raises(InvalidAccessToken):
            tokens.verify(token, NOW)
    assert tokens.cached_tokens == 0

"""JWT access tokens (PyJWT), HS256 only: ``alg=none`` and other algorithms are refused.

A token's signature and claims are checked once: the claims of a verified token are kept (a
bounded LRU, keyed by the token itself) and each later use only compares its expiry with the
clock. That is all an access token's validity is: it is not revocable — log-out and a reused
refresh token revoke the refresh-token family (``application.sessions``), and an access token
already issued lives out its lifetime either way — so a cached token is refused exactly when a
fresh verification would refuse it. Only verified tokens enter the cache: a forged one costs a
verification every time, as before.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

import jwt

from atelier_gateway.application.ports import AccessClaims
from atelier_gateway.domain.errors import InvalidAccessToken
from atelier_gateway.domain.model import Role

ALGORITHM = "HS256"
ISSUER = "atelier-gateway"
# Verified tokens kept per process: far more than the users active within a token's lifetime on
# one gateway process; under 1 KiB each.
CACHED_TOKENS = 10_000


class JwtAccessTokenIssuer:
    def __init__(
        self, secret: str, lifetime_seconds: int = 900, cached_tokens: int = CACHED_TOKENS
    ) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("the JWT secret must be at least 32 bytes")
        self._secret = secret
        self._lifetime = lifetime_seconds
        self._max_cached = cached_tokens
        # token → (its claims, its exp); most recently used last.
        self._verified: OrderedDict[str, tuple[AccessClaims, int]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def lifetime_seconds(self) -> int:
        return self._lifetime

    @property
    def cached_tokens(self) -> int:
        return len(self._verified)

    def issue(self, user_id: str, role: Role, now: datetime) -> str:
        claims = {
            "sub": user_id,
            "role": role.value,
            "iss": ISSUER,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self._lifetime)).timestamp()),
            "typ": "access",
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str, now: datetime) -> AccessClaims:
        known = self._verified.get(token) or self._decode(token)
        claims, exp = known
        with self._lock:
            # Expiry is checked against our clock port, not the system clock, on every use.
            if exp <= int(now.timestamp()):
                self._verified.pop(token, None)
                raise InvalidAccessToken("access token expired")
            if token in self._verified:
                self._verified.move_to_end(token)
            else:
                self._verified[token] = known
                if len(self._verified) > self._max_cached:
                    self._verified.popitem(last=False)
        return claims

    def _decode(self, token: str) -> tuple[AccessClaims, int]:
        """Signature and claims, decoded once; the algorithm is pinned (the header's ``alg`` must
        be HS256: ``none`` and every other algorithm are refused)."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={
                    "require": ["exp", "iat", "sub", "iss"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
            exp = int(claims["exp"])
            expires_at = datetime.fromtimestamp(exp, UTC)
        except (jwt.PyJWTError, TypeError, ValueError, OverflowError, OSError) as e:
            raise InvalidAccessToken("invalid access token") from e
        if claims.get("typ") != "access":
            raise InvalidAccessToken("not an access token")
        try:
            role = Role(claims.get("role", "user"))
        except ValueError as e:
            raise InvalidAccessToken("invalid role claim") from e
        return AccessClaims(user_id=str(claims["sub"]), role=role, expires_at=expires_at), exp


class UrlSafeSecretSource:
    def new_secret(self) -> str:
        return secrets.token_urlsafe(32)

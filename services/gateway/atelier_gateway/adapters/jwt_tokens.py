"""JWT access tokens (PyJWT), HS256 only: ``alg=none`` and other algorithms are refused."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import jwt

from atelier_gateway.application.ports import AccessClaims
from atelier_gateway.domain.errors import InvalidAccessToken
from atelier_gateway.domain.model import Role

ALGORITHM = "HS256"
ISSUER = "atelier-gateway"


class JwtAccessTokenIssuer:
    def __init__(self, secret: str, lifetime_seconds: int = 900) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("the JWT secret must be at least 32 bytes")
        self._secret = secret
        self._lifetime = lifetime_seconds

    @property
    def lifetime_seconds(self) -> int:
        return self._lifetime

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
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != ALGORITHM:
                raise InvalidAccessToken("unsupported token algorithm")
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
        except jwt.PyJWTError as e:
            raise InvalidAccessToken("invalid access token") from e
        # Expiry is checked against our clock port, not the system clock.
        if int(claims["exp"]) <= int(now.timestamp()):
            raise InvalidAccessToken("access token expired")
        if claims.get("typ") != "access":
            raise InvalidAccessToken("not an access token")
        try:
            role = Role(claims.get("role", "user"))
        except ValueError as e:
            raise InvalidAccessToken("invalid role claim") from e
        return AccessClaims(
            user_id=str(claims["sub"]),
            role=role,
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )


class UrlSafeSecretSource:
    def new_secret(self) -> str:
        return secrets.token_urlsafe(32)

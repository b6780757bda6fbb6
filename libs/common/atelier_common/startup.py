"""Start-up checks shared by the three command lines: a configuration that cannot work stops the
process before anything is built, with ONE line on stderr that names every setting to fix, and an
exit status of 2 — never a traceback.

Each service's settings class says what it needs (``missing_settings()``: required settings that
are unset for the adapters chosen; ``unbuilt_parts()``: chosen adapters that this build does not
have, such as the cn market's); this module only reads them and words the line.
"""

from __future__ import annotations

import sys
from typing import Protocol, TypeVar

from pydantic import ValidationError

EXIT_CONFIGURATION = 2


class CheckedSettings(Protocol):
    market: str

    def missing_settings(self) -> list[str]: ...

    def unbuilt_parts(self) -> list[str]: ...


S = TypeVar("S")


class ConfigurationError(Exception):
    """Raised by the checks below; the message is the one line to print."""


def load_settings(settings_class: type[S], program: str) -> S:
    """Read the settings from the environment; a bad value is a one-line configuration error
    naming each setting and what is wrong with it (never the value itself: it may be a secret)."""
    try:
        return settings_class()
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in e.errors(include_url=False, include_input=False)
        )
        raise ConfigurationError(f"{program}: invalid configuration: {problems}") from None


def startup_problem(settings: CheckedSettings) -> str | None:
    """What stops this configuration from starting, in words (without the program name)."""
    parts: list[str] = []
    unbuilt = settings.unbuilt_parts()
    if unbuilt:
        if settings.market == "cn":
            parts.append(
                "the cn market is not built yet (missing from this build: "
                f"{', '.join(unbuilt)}); use MARKET=local or MARKET=global"
            )
        else:
            parts.append(f"not in this build: {', '.join(unbuilt)}")
    missing = settings.missing_settings()
    if missing:
        parts.append(f"MARKET={settings.market} needs {', '.join(missing)} (see .env.example)")
    return "; ".join(parts) or None


def check_startup(settings: CheckedSettings, program: str) -> None:
    problem = startup_problem(settings)
    if problem:
        raise ConfigurationError(f"{program}: cannot start: {problem}")


def report(error: ConfigurationError) -> int:
    """Print the one line on stderr; the exit status for a configuration that cannot start."""
    print(str(error), file=sys.stderr, flush=True)
    return EXIT_CONFIGURATION

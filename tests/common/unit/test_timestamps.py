"""Issue 10 #4: one way to read datetimes back (aware UTC), to put them on the wire and to take
them off it, and to name the end user of a call (atelier_common), for every service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from atelier_common.context import CallContext, require_user, reset_current_call, set_current_call
from atelier_common.timestamps import as_utc, as_utc_or_none, from_timestamp, to_timestamp
from google.protobuf.timestamp_pb2 import Timestamp

from atelier_ports import problems

PARIS_SUMMER = timezone(timedelta(hours=2))


def test_as_utc_takes_naive_values_as_utc_and_converts_aware_ones() -> None:
    naive = datetime(2026, 7, 1, 12, 0)
    assert as_utc(naive) == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert as_utc(naive).tzinfo is UTC
    converted = as_utc(datetime(2026, 7, 1, 14, 0, tzinfo=PARIS_SUMMER))
    assert (converted, converted.tzinfo) == (datetime(2026, 7, 1, 12, 0, tzinfo=UTC), UTC)
    assert as_utc_or_none(None) is None
    assert as_utc_or_none(naive) == as_utc(naive)


def test_timestamps_round_trip_as_aware_utc() -> None:
    moment = datetime(2026, 7, 1, 14, 0, 0, 123456, tzinfo=PARIS_SUMMER)
    stamp = to_timestamp(moment)
    assert stamp is not None
    back = from_timestamp(stamp, "expire_time")
    assert back == moment and back.tzinfo is UTC
    assert to_timestamp(None) is None


def test_a_timestamp_no_datetime_can_hold_is_invalid_argument_on_its_field() -> None:
    too_late = Timestamp(seconds=10**12)
    with pytest.raises(problems.InvalidArgument) as refused:
        from_timestamp(too_late, "expire_time")
    assert refused.value.field == "expire_time"


def test_require_user_names_the_caller_or_refuses() -> None:
    with pytest.raises(problems.Unauthenticated):
        require_user()
    token = set_current_call(CallContext(user_id="u1", role="user", request_id=None))
    try:
        assert require_user() == "u1"
    finally:
        reset_current_call(token)

"""ARM's Retry-After decides when a throttled or unavailable write is tried again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from hypothesis import given
from hypothesis import strategies as st

from activities.asr import retry_after as _retry_after


class _Answer:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


def _error(headers: dict[str, str] | None) -> HttpResponseError:
    err = HttpResponseError(message="throttled")
    err.response = _Answer(headers) if headers is not None else None  # type: ignore[assignment]
    return err


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "1"}, timedelta(seconds=1)),
        ({"Retry-After": "17"}, timedelta(seconds=17)),
        ({"Retry-After": "0"}, timedelta(seconds=1)),  # never a busy loop
        ({"Retry-After": "86400"}, timedelta(minutes=5)),  # never a day's silence
        ({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, None),  # a date: the policy's backoff
        ({}, None),
        (None, None),
    ],
)
def test_retry_after(headers: dict[str, str] | None, expected: timedelta | None) -> None:
    assert _retry_after(_error(headers)) == expected


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_retry_after_stays_between_a_second_and_five_minutes(seconds: float) -> None:
    delay = _retry_after(_error({"Retry-After": str(seconds)}))
    assert delay is not None
    assert timedelta(seconds=1) <= delay <= timedelta(minutes=5)

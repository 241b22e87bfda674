"""The fakes' names come from the real activities (tests/fakes/names.py)."""

from __future__ import annotations

import pytest

from activities.asr import AsrActivities
from activities.verification import VerificationActivities
from tests.fakes.names import activity_name, fake_of


def test_a_fake_is_registered_under_the_real_activitys_name() -> None:
    @fake_of(VerificationActivities.fail_over_then_read)
    async def fake() -> None: ...

    assert activity_name(fake) == "fail_over_then_read"
    assert activity_name(AsrActivities.commit_failover) == "commit_failover"


def test_a_fake_of_something_that_is_no_activity_is_refused() -> None:
    def not_an_activity() -> None: ...

    with pytest.raises(TypeError, match="is not an activity"):
        fake_of(not_an_activity)

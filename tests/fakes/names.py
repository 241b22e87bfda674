"""Fakes of activities take their names from the real methods.

`@fake_of(AsrActivities.fail_over)` registers the decorated method under the name Temporal knows
the real one by; a real method renamed or removed breaks the fake where it is defined, at import
time, instead of leaving a fake no workflow calls any more."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from temporalio import activity

_F = TypeVar("_F", bound=Callable[..., Any])


def activity_name(real: Callable[..., Any]) -> str:
    definition = activity._Definition.from_callable(real)
    if definition is None:
        raise TypeError(f"{real!r} is not an activity")
    return definition.name


def fake_of(real: Callable[..., Any]) -> Callable[[_F], _F]:
    return activity.defn(name=activity_name(real))  # type: ignore[return-value]

"""One activity reads both sides of a verification; a side that fails is an unreadable state."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.exceptions import CancelledError
from temporalio.testing import ActivityEnvironment

from activities.verification import VerificationActivities
from workflows.models import (
    AzureVmRef,
    AzureVmState,
    OnPremVmQuery,
    OnPremVmState,
    VerificationReadInput,
)

QUERY = VerificationReadInput(
    onprem=OnPremVmQuery(vm_name="web-01"), azure=AzureVmRef(resource_group="rg", name="web-01")
)


class Side:
    def __init__(self, answer: Any = None, error: BaseException | None = None) -> None:
        self.answer, self.error, self.calls = answer, error, 0

    def read(self, _: Any) -> Any:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.answer


def activities(onprem: Side, azure: Side) -> VerificationActivities:
    vsphere, asr = type("V", (), {})(), type("A", (), {})()
    vsphere.read_onprem_vm = onprem.read  # type: ignore[attr-defined]
    asr.read_azure_vm = azure.read  # type: ignore[attr-defined]
    return VerificationActivities(asr, vsphere)  # type: ignore[arg-type]


ON = OnPremVmState(vm_name="web-01", found=True, power_state="poweredOn")
OFF = AzureVmState(resource_group="rg", name="web-01", exists=True, power_state="deallocated")


def test_both_sides_are_read_in_one_call() -> None:
    onprem, azure = Side(ON), Side(OFF)
    read = ActivityEnvironment().run(activities(onprem, azure).read_verification_state, QUERY)
    assert (read.onprem, read.azure) == (ON, OFF)
    assert onprem.calls == azure.calls == 1


def test_an_unreadable_vcenter_is_a_failed_check_and_azure_is_still_read() -> None:
    onprem, azure = Side(error=ConnectionError("vcsim: connection refused")), Side(OFF)
    read = ActivityEnvironment().run(activities(onprem, azure).read_verification_state, QUERY)
    assert not read.onprem.found
    assert read.onprem.power_state == "ConnectionError: vcsim: connection refused"
    assert read.azure == OFF


def test_an_unreadable_azure_vm_is_not_taken_for_a_stopped_one() -> None:
    onprem, azure = Side(ON), Side(error=TimeoutError("read timed out"))
    read = ActivityEnvironment().run(activities(onprem, azure).read_verification_state, QUERY)
    assert read.onprem == ON
    assert read.azure.exists
    assert read.azure.power_state == "unreadable (TimeoutError: read timed out)"


def test_cancellation_is_not_swallowed() -> None:
    onprem, azure = Side(error=CancelledError("cancelled")), Side(OFF)
    with pytest.raises(CancelledError):
        ActivityEnvironment().run(activities(onprem, azure).read_verification_state, QUERY)

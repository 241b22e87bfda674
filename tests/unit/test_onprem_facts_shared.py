"""read_onprem_facts: readiness checks that run at the same time share one inventory read."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest

from activities import vsphere_client
from activities.vsphere import OnPremFactsQuery, VCenterReads, VSphereActivities
from activities.vsphere_client import HostInfo, VCenterInventory


class SlowInventory:
    """Stands in for the whole-inventory read: counts reads and holds each until released."""

    def __init__(self, fail: bool = False) -> None:
        self.reads = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail = fail

    def __call__(self, si: Any) -> VCenterInventory:
        self.reads += 1
        self.started.set()
        assert self.release.wait(5)
        if self.fail:
            raise LookupError("the inventory could not be read")
        return VCenterInventory(
            hosts=[
                HostInfo(
                    name=f"esx-{self.reads}",
                    managed_by_vcenter=True,
                    connection_state="connected",
                    datastores=[],
                )
            ],
            datastores=[],
            vms=[],
        )


def activities() -> VSphereActivities:
    return VSphereActivities(
        VCenterReads(
            lambda: SimpleNamespace(
                RetrieveContent=lambda: SimpleNamespace(propertyCollector=object()),
                _stub=SimpleNamespace(poolSize=5),
            )
        )
    )


def test_reads_in_flight_are_shared_and_later_reads_are_fresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inventory = SlowInventory()
    monkeypatch.setattr(vsphere_client, "read_inventory", inventory)
    vsphere = activities()
    with ThreadPoolExecutor(max_workers=10) as pool:
        first = pool.submit(vsphere.read_onprem_facts, OnPremFactsQuery())
        assert inventory.started.wait(5)
        others = [pool.submit(vsphere.read_onprem_facts, OnPremFactsQuery()) for _ in range(9)]
        inventory.release.set()
        results = [first.result(5)] + [o.result(5) for o in others]
    assert inventory.reads == 1
    assert {r.hosts[0].name for r in results} == {"esx-1"}

    # The next check, after that read ended, reads vCenter again: nothing is served stale.
    again = vsphere.read_onprem_facts(OnPremFactsQuery())
    assert inventory.reads == 2 and again.hosts[0].name == "esx-2"


def test_a_failed_read_fails_every_caller_and_the_next_one_reads_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inventory = SlowInventory(fail=True)
    monkeypatch.setattr(vsphere_client, "read_inventory", inventory)
    vsphere = activities()
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(vsphere.read_onprem_facts, OnPremFactsQuery())
        assert inventory.started.wait(5)
        second = pool.submit(vsphere.read_onprem_facts, OnPremFactsQuery())
        inventory.release.set()
        for future in (first, second):
            with pytest.raises(LookupError):
                future.result(5)
    assert inventory.reads == 1
    inventory.fail = False
    assert vsphere.read_onprem_facts(OnPremFactsQuery()).hosts[0].name == "esx-2"

"""The Azure side of many verifications at once: one list of the subscription's VMs with their
power states answers every verification read waiting at that moment.

A boot group verifies its machines together, and after a recovery plan's failover every plan's
group does at once: at 1,000 machines, 143 instanceView GETs a boot group, 1,430 at 10,000,
where ARM's read bucket (250, then 25 a second per principal) would hold a group's GETs a
minute. Rounds spend a read a page instead while reads wait for tokens; while the bucket is full
they cost what the GETs did (bench/RESULTS.md, "2026-12-04, night").

Reads go in rounds: the first reader reads for all who wait; those who come meanwhile are the
next round, led by the first of them. Every read of a round is sent after each of its readers
asked, so no one gets an answer older than their question. A round lists when more VMs wait
than the last list took pages (a list costs a read a page), and GETs each VM otherwise; so one
verification alone costs one GET, as before, and a subscription too large to list cheaply is
never listed.

Correctness never rests on the list (as the job watch's: activities/job_watch.py): a VM the
list does not show, or shows without an instance view, is read by its own GET; a list refused
with a 4xx (other than 429) or answered without any instance view (statusOnly ignored) ends the
lists for this worker's life; any other failure, for that round.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Protocol

from azure.core.exceptions import HttpResponseError

from activities.compute import VmKey, VmStatusList, vm_key
from activities.threads import map_in_threads
from domain.models import AzureVmRef, AzureVmState

log = logging.getLogger(__name__)

# A round's GETs in flight at once (each waits its turn in ARM's read budget as it would alone).
GET_PARALLELISM = 16


class VmStates(Protocol):
    """What the rounds read through (activities/compute.ComputeGateway)."""

    def read_vm(self, ref: AzureVmRef) -> AzureVmState: ...

    def list_power_states(self) -> VmStatusList: ...


@dataclass(eq=False)
class _Ask:
    ref: AzureVmRef
    leads: bool = False
    done: bool = False
    state: AzureVmState | None = None
    error: BaseException | None = None


def _state(ask: _Ask) -> AzureVmState:
    assert ask.state is not None
    return ask.state


@dataclass
class ListUse:
    """What the rounds did (the tests read it): rounds, lists, the VMs lists answered, GETs."""

    rounds: int = 0
    lists: int = 0
    answered_by_list: int = 0
    gets: int = 0
    stopped: str | None = field(default=None)


class AzureVmRounds:
    """Each verification's Azure read, in rounds (the module's docstring says how)."""

    def __init__(self, vms: VmStates) -> None:
        self._vms = vms
        self._changed = threading.Condition()
        self._waiting: list[_Ask] = []
        self._round_running = False
        # What a list cost last time, in reads (pages); before the first, taken as one.
        self._list_pages = 1
        self.use = ListUse()

    @property
    def waiting(self) -> int:
        """Readers not yet taken into a round."""
        with self._changed:
            return len(self._waiting)

    def read_vm(self, ref: AzureVmRef) -> AzureVmState:
        """The VM's state, read after this call began (by a list or a GET). Blocking; raises
        what its GET raised."""
        answer = self.read_vms([ref])[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def read_vms(self, refs: list[AzureVmRef]) -> list[AzureVmState | BaseException]:
        """Each VM's state (or what its GET raised), in `refs`' order, all read after this call
        began: a plan's machines read together join a round as their verifications would."""
        asks = [_Ask(ref) for ref in refs]
        if not asks:
            return []
        with self._changed:
            self._waiting.extend(asks)
            if not self._round_running:
                self._round_running = True
                asks[0].leads = True
        while True:
            with self._changed:
                while not all(a.done for a in asks) and not any(
                    a.leads and not a.done for a in asks
                ):
                    self._changed.wait()
                if all(a.done for a in asks):
                    break
            self._lead_round()
        return [ask.error if ask.error is not None else _state(ask) for ask in asks]

    def _lead_round(self) -> None:
        with self._changed:
            asks, self._waiting = self._waiting, []
        answers: dict[VmKey, AzureVmState | BaseException] = {}
        try:
            answers = self._answer([a.ref for a in asks])
        finally:
            with self._changed:
                for ask in asks:
                    answer = answers.get(vm_key(ask.ref.resource_group, ask.ref.name))
                    if isinstance(answer, AzureVmState):
                        ask.state = answer
                    else:
                        ask.error = answer or RuntimeError("the round ended without an answer")
                    ask.done = True
                # The next round is led by the first who came during this one.
                if self._waiting:
                    self._waiting[0].leads = True
                else:
                    self._round_running = False
                self._changed.notify_all()

    def _answer(self, refs: list[AzureVmRef]) -> dict[VmKey, AzureVmState | BaseException]:
        wanted = {vm_key(r.resource_group, r.name): r for r in refs}
        self.use.rounds += 1
        listed = self._list() if len(wanted) > self._list_pages else None
        answers: dict[VmKey, AzureVmState | BaseException] = {}
        to_get: list[tuple[VmKey, AzureVmRef]] = []
        for key, ref in wanted.items():
            if listed is not None and key in listed:
                self.use.answered_by_list += 1
                answers[key] = AzureVmState(
                    resource_group=ref.resource_group,
                    name=ref.name,
                    exists=True,
                    power_state=listed[key],
                )
            else:
                to_get.append((key, ref))
        self.use.gets += len(to_get)
        got = self._get_each([ref for _, ref in to_get])
        answers.update(zip([key for key, _ in to_get], got, strict=True))
        return answers

    def _get_each(self, refs: list[AzureVmRef]) -> list[AzureVmState | BaseException]:
        """A GET each, several at once as the readers' own threads made them before rounds; in
        the leader's context (the reads' lane in ARM's budget: activities/arm_reads.py)."""

        def get(ref: AzureVmRef) -> AzureVmState | BaseException:
            try:
                return self._vms.read_vm(ref)
            except Exception as err:
                return err

        return map_in_threads(get, refs, GET_PARALLELISM)

    def _list(self) -> dict[VmKey, str | None] | None:
        if self.use.stopped is not None:
            return None
        try:
            listed = self._vms.list_power_states()
        except HttpResponseError as err:
            status = err.status_code or 0
            if 400 <= status < 500 and status != 429:
                self._stop_lists(f"Azure refused the VM status list ({status})")
            else:
                log.info("the VM status list failed (%s): this round reads VM by VM", status)
            return None
        except Exception as err:  # a lost answer: this round reads VM by VM
            log.info("the VM status list failed (%s): this round reads VM by VM", err)
            return None
        self.use.lists += 1
        self._list_pages = max(1, listed.pages)
        if listed.without_instance_view and not listed.power_states:
            self._stop_lists("Azure listed the VMs without their status (statusOnly ignored)")
            return None
        return listed.power_states

    def _stop_lists(self, why: str) -> None:
        self.use.stopped = why
        log.warning("%s: the verifications read Azure VM by VM", why)

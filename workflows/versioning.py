"""Every incompatible change to a workflow, listed in this one place.

The mechanism is Temporal's patching, and only it. A change that would make a running
failback's history replay differently (a new activity call, a reordered await, a timer more or
less) goes behind `workflow.patched(PATCH_ID)`, with `PATCH_ID` a constant of this module and an
entry in ACTIVE_PATCHES that says when the old branch can go. Its life cycle:

1. `if workflow.patched(ID): new code else: old code`, both kept, while failbacks started
   before the change may still run or be replayed.
2. When no workflow older than the change is open (`failback list` shows none, and the stored
   histories in tests/replay were re-recorded past it), the old branch is deleted and the call
   becomes `workflow.deprecate_patch(ID)`, kept one release so that histories recorded with the
   marker still replay.
3. Then the call and the entry are deleted.

A start from the Web UI or the `temporal` CLI therefore always runs today's code: there is no
input field that picks an older behaviour. tests/workflows/test_versioning.py checks that every
patch id used in workflows/ is listed here and that every entry is used.

Active: "authenticated-decisions", "plan-reads-first-verification",
"onprem-facts-of-the-plan", "machines-start-during-plan-job", "plan-approves-on-its-read",
"points-read-where-listed", "hyperv-plan-fails-over-whole", "unverified-told-first" and
"plan-reads-until-verified" (below). Before them,
no patch was active: revisions 0 and 1 of the machine workflow and the patches
"plan-approval-only" and "concurrent-fan-out" were removed before the first release (only the
lab had ever run them), and the stored histories were re-recorded.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Patch:
    id: str
    what: str
    # When the old branch may be deleted (step 2 above).
    remove_when: str


AUTHENTICATED_DECISIONS = "authenticated-decisions"
PLAN_READS_FIRST_VERIFICATION = "plan-reads-first-verification"
ONPREM_FACTS_OF_THE_PLAN = "onprem-facts-of-the-plan"
MACHINES_START_DURING_PLAN_JOB = "machines-start-during-plan-job"
PLAN_APPROVES_ON_ITS_READ = "plan-approves-on-its-read"
POINTS_READ_WHERE_LISTED = "points-read-where-listed"
HYPERV_PLAN_FAILS_OVER_WHOLE = "hyperv-plan-fails-over-whole"
UNVERIFIED_TOLD_FIRST = "unverified-told-first"
PLAN_READS_UNTIL_VERIFIED = "plan-reads-until-verified"

ACTIVE_PATCHES: tuple[Patch, ...] = (
    Patch(
        id=AUTHENTICATED_DECISIONS,
        what="a failback reads its decision policy (R28-R31) from the worker at its start: one "
        "activity more before discovery",
        remove_when="no failback started before this change is open and tests/replay's "
        "histories are re-recorded with the marker",
    ),
    Patch(
        id=PLAN_READS_FIRST_VERIFICATION,
        what="FO-PLAN: the plan's failover activity also reads every machine's first "
        "verification as its job ends (fail_over_plan_then_read instead of fail_over_plan), "
        "and passes each machine its read",
        remove_when="no plan failback started before this change is open and tests/replay's "
        "histories are re-recorded with the marker",
    ),
    Patch(
        id=ONPREM_FACTS_OF_THE_PLAN,
        what="readiness asks vCenter for the facts of the failback's own VMs (and, classic, its "
        "master targets', read after ASR) instead of every VM of vCenter in the history",
        remove_when="no failback started before this change is open and tests/replay's "
        "histories are re-recorded with the marker",
    ),
    Patch(
        id=MACHINES_START_DURING_PLAN_JOB,
        what="FO-PLAN: the plan starts its machines' workflows while its failover job runs "
        "(Timings.machines_start_into_plan_job_seconds into it; a timer more) and tells each "
        "the job's end by a signal (plan_job_ended), instead of starting them after the end",
        remove_when="no plan failback started before this change is open and tests/replay's "
        "histories are re-recorded with the marker",
    ),
    Patch(
        id=PLAN_APPROVES_ON_ITS_READ,
        what="FO-PLAN: the plan counts a machine its own read at the job's end verified as "
        "verified, awaits approval without its word, tells it so (plan_counts_its_read: the "
        "machine then sends no `machine_verified` signal) and awaits the telling only before "
        "sending a decision",
        remove_when="no plan failback started before this change is open and tests/replay's "
        "histories are re-recorded with the marker",
    ),
    Patch(
        id=POINTS_READ_WHERE_LISTED,
        what="a plan's point selection runs on the task queue of the worker whose readiness read "
        "listed the points (it takes them there instead of listing them again), on the shared "
        "task queue if that worker does not pick it up in time",
        remove_when="no plan failback started before this change is open and tests/replay's "
        "histories are re-recorded with the marker",
    ),
    Patch(
        id=HYPERV_PLAN_FAILS_OVER_WHOLE,
        what="FO-PLAN: a Hyper-V plan failing back for synchronization to its own VMs fails over "
        "through the recovery plan's planned failover (one ASR job) instead of each machine's "
        "own, boot group by boot group",
        remove_when="no Hyper-V plan failback started before this change is open and "
        "tests/replay's histories are re-recorded with the marker",
    ),
    Patch(
        id=UNVERIFIED_TOLD_FIRST,
        what="FO-PLAN: at the job's end the plan tells the machines its read did not verify "
        "that the job ended before the others (their plan_job_ended signals first), instead of "
        "every machine in boot group order",
        remove_when="no plan failback started before this change is open and tests/replay's "
        "histories are re-recorded with the marker",
    ),
    Patch(
        id=PLAN_READS_UNTIL_VERIFIED,
        what="FO-PLAN, a plan that approves on its read: the machines its read at the job's end "
        "did not verify, the plan reads again itself, together, every verification poll until "
        "each is verified or the verification's time is up (read_verification_states, a timer "
        "and an activity per round), besides each machine's own word",
        remove_when="no plan failback started before this change is open and tests/replay's "
        "histories are re-recorded with the marker",
    ),
)

"""The aiohttp application: ARM routing, bearer-token checks, faults, journal, `/_lab/*` control.

ARM paths are case-insensitive and answer unknown paths with an ARM error body, so the ARM side
is one catch-all handler with its own regex router instead of aiohttp's case-sensitive routes.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from lab.asr_sim import hyperv, views
from lab.asr_sim.arm import (
    ASR_API_VERSION,
    COMPUTE_API_VERSIONS,
    ArmError,
    bad_request,
    iso,
    not_found,
)
from lab.asr_sim.faults import FAULT_ADAPTER, DelayFault
from lab.asr_sim.job_filter import parse_job_filter
from lab.asr_sim.operations import Operation
from lab.asr_sim.state import ItemState, Job, SimulatorState
from lab.identity import LabIdentityProvider, add_identity_routes
from lab.scenario import RecoveryPlanSpec, ThrottlingSpec

log = logging.getLogger(__name__)

_NAME = r"[^/]+"
_V = (
    rf"/subscriptions/(?P<sub>{_NAME})/resourceGroups/(?P<rg>{_NAME})"
    rf"/providers/Microsoft\.RecoveryServices/vaults/(?P<vault>{_NAME})"
)
_F = rf"{_V}/replicationFabrics/(?P<fabric>{_NAME})"
_C = rf"{_F}/replicationProtectionContainers/(?P<container>{_NAME})"
_RPI = rf"{_C}/replicationProtectedItems/(?P<item>{_NAME})"
_VM = (
    rf"/subscriptions/(?P<sub>{_NAME})/resourceGroups/(?P<rg>{_NAME})"
    rf"/providers/Microsoft\.Compute/virtualMachines/(?P<vm>{_NAME})"
)


# A token asked for without a client id is the lab's own principal; the subscription's shared
# buckets are kept under a name no client id can take.
DEFAULT_PRINCIPAL = "lab"
SUBSCRIPTION = "\0subscription"


class TokenIssuer:
    """Random opaque bearer tokens for whoever presents the lab secret, each for the principal
    (client id) it was asked for: ARM's budgets are per principal."""

    def __init__(self, secret: str, lifetime_seconds: int) -> None:
        self._secret = secret.encode()
        self._lifetime = lifetime_seconds
        self._tokens: dict[str, tuple[float, str]] = {}

    def issue(self, presented: str, principal: str = DEFAULT_PRINCIPAL) -> tuple[str, int] | None:
        if not hmac.compare_digest(presented.encode(), self._secret):
            return None
        now = time.time()
        self._tokens = {t: held for t, held in self._tokens.items() if held[0] > now}
        token = secrets.token_urlsafe(32)
        expires_on = int(now) + self._lifetime
        self._tokens[token] = (expires_on, principal)
        return token, expires_on

    def principal(self, token: str) -> str | None:
        """Whose token this is, or None when it is unknown or expired."""
        held = self._tokens.get(token)
        return held[1] if held is not None and held[0] > time.time() else None


class ArmThrottle:
    """ARM's token buckets (Azure Resource Manager throttling): reads (GET) and writes (PUT,
    POST, PATCH, DELETE) each from their own bucket, per principal, and the subscription's own
    buckets shared by every principal (ARM's global limit, `subscription_multiplier` times a
    principal's). A request that finds either bucket empty is refused with 429 and the
    Retry-After of its next token, and takes none."""

    def __init__(self, spec: ThrottlingSpec, clock: Callable[[], float] = time.monotonic) -> None:
        self._spec = spec
        self._clock = clock
        self._buckets: dict[tuple[str, str], list[float]] = {}
        # What ARM refused, by kind and by principal: the bench reports reads refused (zero,
        # if the workers keep their budgets).
        self.refused = {"read": 0, "write": 0}
        self.refused_by_principal: dict[str, int] = {}

    def _refilled(self, key: tuple[str, str], burst: float, rate: float, now: float) -> float:
        """Refill the bucket `key` up to `now` (taking nothing); the seconds until it holds a
        whole token (0.0: it holds one now)."""
        bucket = self._buckets.setdefault(key, [burst, now])
        tokens = min(burst, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        bucket[0] = tokens
        return 0.0 if tokens >= 1 else (1 - tokens) / rate

    def refusal(self, method: str, principal: str) -> ArmError | None:
        if not self._spec.enabled:
            return None
        spec = self._spec
        kind = "read" if method in ("GET", "HEAD") else "write"
        read_burst, read_rate, write_burst, write_rate = spec.effective()
        burst, rate = (read_burst, read_rate) if kind == "read" else (write_burst, write_rate)
        scale = spec.subscription_multiplier
        now = self._clock()
        mine, everyone = (principal, kind), (SUBSCRIPTION, kind)
        own_wait = self._refilled(mine, burst, rate, now)
        shared_wait = self._refilled(everyone, burst * scale, rate * scale, now)
        wait = max(own_wait, shared_wait)
        if wait == 0.0:
            self._buckets[mine][0] -= 1
            self._buckets[everyone][0] -= 1
            return None
        self.refused[kind] += 1
        self.refused_by_principal[principal] = self.refused_by_principal.get(principal, 0) + 1
        retry_after = max(1, math.ceil(wait))
        return ArmError(
            429,
            "TooManyRequests" if kind == "read" else "TooManyWriteRequests",
            (
                f"The request is throttled: the principal has used its {kind} budget "
                f"({burst:g}, refilled at {rate:g} a second)."
                if own_wait >= shared_wait
                else f"The request is throttled: the subscription's principals together have "
                f"used its {kind} budget ({burst * scale:g}, refilled at {rate * scale:g} a "
                "second)."
            )
            + f" Retry after {retry_after} seconds.",
            headers={
                "Retry-After": str(retry_after),
                f"x-ms-ratelimit-remaining-subscription-{kind}s": "0",
            },
        )


STATE_KEY = web.AppKey("state", SimulatorState)
TOKENS_KEY = web.AppKey("tokens", TokenIssuer)
THROTTLE_KEY = web.AppKey("throttle", ArmThrottle)

Handler = Callable[[web.Request, SimulatorState, dict[str, str], Any], Awaitable[web.Response]]


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    api_versions: frozenset[str]
    handler: Handler


_ROUTES: list[_Route] = []


def _route(method: str, pattern: str, *, compute: bool = False) -> Callable[[Handler], Handler]:
    versions = COMPUTE_API_VERSIONS if compute else frozenset({ASR_API_VERSION})

    def register(handler: Handler) -> Handler:
        _ROUTES.append(_Route(method, re.compile(pattern, re.IGNORECASE), versions, handler))
        return handler

    return register


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


SKIP_TOKEN = "$skiptoken"


def _page(
    request: web.Request,
    state: SimulatorState,
    values: list[Any],
    shown: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """One page of a list and the nextLink to the rest, as every ASR list is paged. `shown`
    turns a value into its resource for the page's values only: building every item's resource
    for each page made a list of 10,000 items cost 10,000 builds a page."""
    wire = state.wire
    try:
        start = int(request.query.get(SKIP_TOKEN, "0"))
    except ValueError:
        raise bad_request(f"{SKIP_TOKEN} is not one this list gave", target=SKIP_TOKEN) from None
    end = start + wire.page_size
    next_link = None
    if end < len(values):
        url = request.url.update_query({SKIP_TOKEN: str(end)})
        if not wire.next_link_api_version:
            url = url.without_query_params("api-version")
        next_link = str(url)
    page = values[start:end]
    return {"value": page if shown is None else [shown(v) for v in page], "nextLink": next_link}


def _retry_after(state: SimulatorState) -> str:
    return str(state.wire.retry_after_seconds)


def _arm_error(error: ArmError) -> web.Response:
    return _json(error.body(), status=error.status, headers=error.headers)


# -- scope checks -----------------------------------------------------------------------------


def _check_subscription(state: SimulatorState, m: dict[str, str]) -> None:
    if m["sub"].lower() != state.ids.subscription.lower():
        raise not_found(
            f"The subscription '{m['sub']}' could not be found.", code="SubscriptionNotFound"
        )


def _check_vault(state: SimulatorState, m: dict[str, str]) -> None:
    ids = state.ids
    _check_subscription(state, m)
    if m["rg"].lower() != ids.resource_group.lower():
        raise not_found(
            f"Resource group '{m['rg']}' could not be found.", code="ResourceGroupNotFound"
        )
    if m["vault"].lower() != ids.vault.lower():
        raise not_found(
            f"The Resource 'Microsoft.RecoveryServices/vaults/{m['vault']}' under resource group "
            f"'{m['rg']}' was not found."
        )


def _check_fabric(state: SimulatorState, m: dict[str, str]) -> None:
    _check_vault(state, m)
    if m["fabric"].lower() != state.ids.fabric.lower():
        raise not_found(
            f"Fabric '{m['fabric']}' was not found in vault '{state.ids.vault}'; the vault has "
            f"fabric '{state.ids.fabric}'."
        )


def _check_container(state: SimulatorState, m: dict[str, str]) -> None:
    _check_fabric(state, m)
    if m["container"].lower() != state.ids.container.lower():
        raise not_found(
            f"Protection container '{m['container']}' was not found in fabric "
            f"'{state.ids.fabric}'; the fabric has container '{state.ids.container}'."
        )


def _item(state: SimulatorState, m: dict[str, str]) -> ItemState:
    _check_container(state, m)
    item = state.item(m["item"])
    if item is None:
        raise not_found(
            f"Replication protected item '{m['item']}' was not found in protection container "
            f"'{state.ids.container}'."
        )
    return item


# -- ASR: protected items and recovery points -------------------------------------------------


_PLAN_FILTER = re.compile(r"\s*RecoveryPlanName\s+eq\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)


def _job(state: SimulatorState, m: dict[str, str]) -> Job:
    _check_vault(state, m)
    job = state.job(m["job"])
    if job is None:
        raise not_found(f"Job '{m['job']}' was not found in vault '{state.ids.vault}'.")
    return job


def _has_plan(state: SimulatorState, name: str) -> bool:
    return any(p.name.lower() == name.lower() for p in state.scenario.azure.recovery_plans)


def _plan(state: SimulatorState, name: str) -> RecoveryPlanSpec:
    try:
        return state.scenario.recovery_plan(name)
    except KeyError:
        known = [p.name for p in state.scenario.azure.recovery_plans]
        raise not_found(
            f"Recovery plan '{name}' was not found in vault '{state.ids.vault}'; the vault's "
            f"recovery plans: {known}."
        ) from None


@_route("GET", rf"{_V}/replicationProtectedItems")
async def list_items(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    _check_vault(state, m)
    items = list(state.items.values())
    odata_filter = request.query.get("$filter")
    if odata_filter is not None:
        match = _PLAN_FILTER.fullmatch(odata_filter)
        if match is None:
            raise bad_request(
                f"$filter '{odata_filter}' is not supported by the lab; it supports "
                "\"RecoveryPlanName eq '<plan>'\" only.",
                code="NotSupportedByLab",
                target="$filter",
            )
        plan_name = match.group(1).replace("''", "'")
        if state.wire.unknown_plan_filter == "empty" and not _has_plan(state, plan_name):
            return _json(_page(request, state, []))
        plan = _plan(state, plan_name)
        members = {name.lower() for group in plan.boot_groups for name in group}
        items = [i for i in items if i.name.lower() in members]
    now = state.clock()
    return _json(_page(request, state, items, lambda i: views.item_resource(state, i.name, now)))


@_route("GET", rf"{_C}/replicationProtectedItems")
async def list_container_items(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    _check_container(state, m)
    now = state.clock()
    items = list(state.items.values())
    return _json(_page(request, state, items, lambda i: views.item_resource(state, i.name, now)))


@_route("GET", _RPI)
async def get_item(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    item = _item(state, m)
    return _json(views.item_resource(state, item.name, state.clock()))


@_route("GET", rf"{_RPI}/recoveryPoints")
async def list_points(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    item = _item(state, m)
    return _json(
        _page(
            request,
            state,
            [
                views.recovery_point_resource(state, item.name, p)
                for p in item.visible_recovery_points(state.clock())
            ],
        )
    )


@_route("GET", rf"{_RPI}/recoveryPoints/(?P<point>{_NAME})")
async def get_point(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    item = _item(state, m)
    for point in item.visible_recovery_points(state.clock()):
        if point.name.lower() == m["point"].lower():
            return _json(views.recovery_point_resource(state, item.name, point))
    raise not_found(f"Recovery point '{m['point']}' of protected item '{item.name}' was not found.")


async def _start(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any, operation: Operation
) -> web.Response:
    item = _item(state, m)
    job = state.start_operation(item, operation, body)
    base = str(request.url.origin())
    query = f"?api-version={ASR_API_VERSION}"
    headers = {
        "Location": f"{base}{state.ids.operation_result(item.name, job.name)}{query}",
        "Azure-AsyncOperation": f"{base}{state.ids.operation_status(job.name)}{query}",
        "Retry-After": _retry_after(state),
        "x-ms-request-id": state.ids.job(job.name),
    }
    return web.Response(status=202, headers=headers)


@_route("POST", rf"{_RPI}/unplannedFailover")
async def unplanned_failover(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    return await _start(request, state, m, body, Operation.UNPLANNED_FAILOVER)


@_route("POST", rf"{_RPI}/plannedFailover")
async def planned_failover(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    return await _start(request, state, m, body, Operation.PLANNED_FAILOVER)


@_route("POST", rf"{_RPI}/failoverCancel")
async def failover_cancel(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    return await _start(request, state, m, body, Operation.FAILOVER_CANCEL)


@_route("POST", rf"{_RPI}/failoverCommit")
async def failover_commit(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    return await _start(request, state, m, body, Operation.FAILOVER_COMMIT)


@_route("POST", rf"{_RPI}/reProtect")
async def reprotect(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    return await _start(request, state, m, body, Operation.REPROTECT)


@_route("GET", rf"{_RPI}/operationresults/(?P<job>{_NAME})")
async def operation_result(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    item = _item(state, m)
    job = state.job(m["job"])
    if job is None or job.item is not item:
        raise not_found(f"Operation '{m['job']}' was not found for protected item '{item.name}'.")
    if not job.finished:
        return web.Response(
            status=202,
            headers={"Location": str(request.url), "Retry-After": _retry_after(state)},
        )
    return _json(views.item_resource(state, item.name, state.clock()))


# -- ASR: recovery plans ----------------------------------------------------------------------


@_route("GET", rf"{_V}/replicationRecoveryPlans")
async def list_plans(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    _check_vault(state, m)
    plans = [views.recovery_plan_resource(state, p) for p in state.scenario.azure.recovery_plans]
    return _json(_page(request, state, plans))


@_route("GET", rf"{_V}/replicationRecoveryPlans/(?P<plan>{_NAME})")
async def get_plan(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    _check_vault(state, m)
    return _json(views.recovery_plan_resource(state, _plan(state, m["plan"])))


@_route("POST", rf"{_V}/replicationRecoveryPlans/(?P<plan>{_NAME})/(?P<action>{_NAME})")
async def plan_action(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    _check_vault(state, m)
    plan = _plan(state, m["plan"])
    operation = {
        "unplannedfailover": Operation.UNPLANNED_FAILOVER,
        "plannedfailover": Operation.PLANNED_FAILOVER,
    }.get(m["action"].lower())
    if operation is None:
        raise bad_request(
            f"Recovery plan operations other than unplannedFailover and plannedFailover "
            f"({m['action']} on plan '{plan.name}') are not supported by the lab.",
            code="NotSupportedByLab",
        )
    job = state.start_plan_failover(plan, body, operation)
    base = str(request.url.origin())
    query = f"?api-version={ASR_API_VERSION}"
    # As recorded (hyperv-RPFailback.json): the plan's operationresults, and the vault's
    # operation status, both named by the job.
    result = f"{state.ids.recovery_plan(plan.name)}/operationresults/{job.name}"
    headers = {
        "Location": f"{base}{result}{query}",
        "Azure-AsyncOperation": f"{base}{state.ids.operation_status(job.name)}{query}",
        "Retry-After": _retry_after(state),
        "x-ms-request-id": state.ids.job(job.name),
    }
    return web.Response(status=202, headers=headers)


@_route(
    "GET", rf"{_V}/replicationRecoveryPlans/(?P<plan>{_NAME})/operationresults/(?P<job>{_NAME})"
)
async def plan_operation_result(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    _check_vault(state, m)
    plan = _plan(state, m["plan"])
    job = state.job(m["job"])
    if job is None or job.plan is None or job.plan.name.lower() != plan.name.lower():
        raise not_found(f"Operation '{m['job']}' was not found for recovery plan '{plan.name}'.")
    if not job.finished:
        return web.Response(
            status=202,
            headers={"Location": str(request.url), "Retry-After": _retry_after(state)},
        )
    # Recorded: 204 with no body once the plan's job has ended.
    return web.Response(status=204)


# -- ASR: jobs and operation status ----------------------------------------------------------


@_route("GET", rf"{_V}/replicationOperationStatus/(?P<job>{_NAME})")
async def get_operation_status(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    _check_vault(state, m)
    job = state.job(m["job"])
    if job is None:
        raise not_found(f"Operation '{m['job']}' was not found in vault '{state.ids.vault}'.")
    document = views.operation_status(state, job)
    # Pace pollers that kept the SDK's 30 s default (UNVERIFIED whether ASR sends it here).
    headers = {} if job.finished else {"Retry-After": _retry_after(state)}
    return _json(document, headers=headers)


@_route("GET", rf"{_V}/replicationJobs")
async def list_jobs(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    # Newest job first; $filter as in JobQueryParameter (see parse_job_filter).
    _check_vault(state, m)
    jobs = sorted(state.jobs.values(), key=lambda j: j.start_time, reverse=True)
    odata_filter = request.query.get("$filter")
    if odata_filter is not None:
        try:
            query = parse_job_filter(odata_filter)
        except ValueError as err:
            raise bad_request(str(err), code="BadRequest", target="$filter") from None
        jobs = [j for j in jobs if query.matches(j.start_time, j.state)]
    return _json(_page(request, state, jobs, lambda j: views.job_resource(state, j)))


@_route("GET", rf"{_V}/replicationJobs/(?P<job>{_NAME})")
async def get_job(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    return _json(views.job_resource(state, _job(state, m)))


@_route("POST", rf"{_V}/replicationJobs/(?P<job>{_NAME})/resume")
async def resume_job(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    """A suspended job goes on (ResumeJobParams: `{"properties": {"comments": ...}}`)."""
    job = _job(state, m)
    state.resume_job(job)
    job.state = "InProgress"
    return _json(views.job_resource(state, job))


# -- ASR: fabric, containers, vCenters, policies ---------------------------------------------


@_route("GET", rf"{_V}/replicationFabrics")
async def list_fabrics(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    _check_vault(state, m)
    return _json(_page(request, state, [views.fabric_resource(state, state.clock())]))


@_route("GET", _F)
async def get_fabric(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    _check_fabric(state, m)
    return _json(views.fabric_resource(state, state.clock()))


@_route("GET", rf"{_V}/replicationRecoveryServicesProviders")
@_route("GET", rf"{_F}/replicationRecoveryServicesProviders")
async def list_providers(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    """Hyper-V: the hosts (or the VMM server) registered with the vault (the spec example's
    shape); none for a VMware vault's lab."""
    if "fabric" in m:
        _check_fabric(state, m)
    else:
        _check_vault(state, m)
    found = hyperv.providers(state, state.clock()) if state.architecture == "hyperv" else []
    return _json(_page(request, state, found))


@_route("GET", rf"{_F}/replicationProtectionContainers")
async def list_containers(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    _check_fabric(state, m)
    return _json(_page(request, state, [views.container_resource(state)]))


@_route("GET", _C)
async def get_container(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    _check_container(state, m)
    return _json(views.container_resource(state))


@_route("GET", rf"{_C}/replicationProtectionContainerMappings")
async def list_container_mappings(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    _check_container(state, m)
    return _json(_page(request, state, views.container_mapping_resources(state)))


@_route("GET", rf"{_F}/replicationvCenters")
async def list_vcenters(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    _check_fabric(state, m)
    now = state.clock()
    return _json(
        _page(
            request, state, [views.vcenter_resource(state, v, now) for v in state.fabric.vcenters]
        )
    )


@_route("GET", rf"{_F}/replicationvCenters/(?P<vcenter>{_NAME})")
async def get_vcenter(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    _check_fabric(state, m)
    vcenter = state.fabric.vcenter(m["vcenter"])
    if vcenter is None:
        known = [v.name for v in state.fabric.vcenters]
        raise not_found(
            f"vCenter '{m['vcenter']}' was not found in fabric '{state.ids.fabric}'; its "
            f"vCenters and ESXi hosts: {known}."
        )
    return _json(views.vcenter_resource(state, vcenter, state.clock()))


@_route("GET", rf"{_V}/replicationPolicies")
async def list_policies(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    _check_vault(state, m)
    return _json(_page(request, state, views.policy_resources(state)))


@_route("GET", rf"{_V}/replicationPolicies/(?P<policy>{_NAME})")
async def get_policy(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    _check_vault(state, m)
    for policy in views.policy_resources(state):
        if policy["name"].lower() == m["policy"].lower():
            return _json(policy)
    raise not_found(
        f"Replication policy '{m['policy']}' was not found in vault '{state.ids.vault}'."
    )


# -- Compute ---------------------------------------------------------------------------------


def _compute_vm_name(state: SimulatorState, m: dict[str, str]) -> str:
    ids = state.ids
    _check_subscription(state, m)
    vm = state.azure_vm(m["vm"])
    if m["rg"].lower() != ids.recovery_resource_group.lower() or vm is None or vm.deleted_at:
        raise not_found(
            f"The Resource 'Microsoft.Compute/virtualMachines/{m['vm']}' under resource group "
            f"'{m['rg']}' was not found. For more details please go to "
            "https://aka.ms/ARMResourceNotFoundFix"
        )
    return vm.name


@_route("GET", _VM, compute=True)
async def get_vm(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    name = _compute_vm_name(state, m)
    expand = request.query.get("$expand", "")
    return _json(
        views.compute_vm_resource(state, name, with_instance_view=expand.lower() == "instanceview")
    )


@_route(
    "GET",
    rf"/subscriptions/(?P<sub>{_NAME})/providers/Microsoft\.Compute/virtualMachines",
    compute=True,
)
async def list_all_vms(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    """The subscription's VMs; with statusOnly=true, each with its instance view (as the wire
    switch vm_status_list says)."""
    _check_subscription(state, m)
    status_only = request.query.get("statusOnly", "").lower() == "true"
    if status_only and state.wire.vm_status_list == "refused":
        raise bad_request("Query parameter statusOnly is not supported.", target="statusOnly")
    with_view = status_only and state.wire.vm_status_list == "honoured"
    return _json(
        _page(
            request,
            state,
            views.compute_vms_listed(state),
            lambda item: views.compute_vm_listed(state, item, with_instance_view=with_view),
        )
    )


@_route("GET", rf"{_VM}/instanceView", compute=True)
async def get_instance_view(
    request: web.Request, state: SimulatorState, m: dict[str, str], body: Any
) -> web.Response:
    name = _compute_vm_name(state, m)
    return _json(views.instance_view(state, name))


# -- the ARM front door ----------------------------------------------------------------------


def _parse_body(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw.decode(errors="replace")


async def _dispatch(request: web.Request, state: SimulatorState, raw: bytes) -> web.Response:
    auth = request.headers.get("Authorization", "")
    principal = _principal_of(request)
    if principal is None:
        reason = "missing" if not auth else "invalid or expired"
        raise ArmError(
            401,
            "AuthenticationFailed" if auth else "AuthenticationFailedMissingToken",
            f"Authentication failed: the 'Authorization: Bearer <token>' header is {reason}. "
            "Get a token from POST /_lab/token.",
            headers={
                "WWW-Authenticate": 'Bearer error="invalid_token", '
                f'error_description="The access token is {reason}"'
            },
        )

    throttled = request.app[THROTTLE_KEY].refusal(request.method, principal)
    if throttled is not None:
        raise throttled

    fault = state.faults.take_http(request.method, request.path)
    if fault is not None:
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        raise ArmError(
            fault.status, fault.code or "InjectedFault", fault.message or "", headers=headers
        )

    api_version = request.query.get("api-version")
    if not api_version:
        raise bad_request(
            "The api-version query parameter (?api-version=) is required for all requests.",
            code="MissingApiVersionParameter",
        )

    path_matched = False
    for route in _ROUTES:
        match = route.pattern.fullmatch(request.path)
        if match is None:
            continue
        path_matched = True
        if route.method != request.method:
            continue
        if api_version not in route.api_versions:
            raise bad_request(
                f"The api-version '{api_version}' is not supported by the lab for this resource; "
                f"supported: {sorted(route.api_versions)}.",
                code="InvalidApiVersionParameter",
            )
        body = _parse_body(raw)
        if isinstance(body, str):
            raise bad_request("The request body is not valid JSON.")
        return await route.handler(request, state, match.groupdict(), body)
    if path_matched:
        raise ArmError(
            405,
            "MethodNotAllowed",
            f"The HTTP method '{request.method}' is not supported for '{request.path}'.",
        )
    raise not_found(
        f"No resource or operation at '{request.path}' in the lab's ASR simulator.",
        code="ResourceNotFound",
    )


async def handle_arm(request: web.Request) -> web.StreamResponse:
    if request.path.startswith("/_lab/"):
        raise web.HTTPNotFound(text=f"no lab endpoint {request.method} {request.path}")
    state = request.app[STATE_KEY]
    received = state.clock()
    raw = await request.read()
    # A connection fault acts on the wire, before the token is even looked at.
    connection = state.faults.take_connection(request.method, request.path)
    if connection is not None and not connection.after_processing:
        if isinstance(connection, DelayFault):
            await asyncio.sleep(connection.seconds)
        else:
            _record(state, request, raw, received, None, {"dropped": True})
            return _drop(request)
    response = await _answer(request, state, raw)
    extra: dict[str, Any] = {}
    if connection is not None and connection.after_processing:
        if isinstance(connection, DelayFault):
            await asyncio.sleep(connection.seconds)
        else:
            _record(state, request, raw, received, response.status, {"dropped": True})
            return _drop(request)
    if isinstance(connection, DelayFault):
        extra["delayed_seconds"] = connection.seconds
    _record(state, request, raw, received, response.status, extra)
    return response


async def _answer(request: web.Request, state: SimulatorState, raw: bytes) -> web.Response:
    try:
        response = await _dispatch(request, state, raw)
    except ArmError as err:
        response = _arm_error(err)
    except Exception:
        log.exception("unhandled error for %s %s", request.method, request.path)
        response = _arm_error(
            ArmError(500, "InternalServerError", "The lab's ASR simulator hit an internal error.")
        )
    response.headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
    if state.schema_check and 200 <= response.status < 300:
        _check_schema(state, request, response)
    return response


def _check_schema(state: SimulatorState, request: web.Request, response: web.Response) -> None:
    from lab.asr_sim.schema import check_body

    if response.content_type != "application/json" or not isinstance(response.body, bytes):
        return
    for violation in check_body(request.path, json.loads(response.body)):
        log.error("answer to %s %s: %s", request.method, request.path, violation)
        state.schema_violations.append(
            {"method": request.method, "path": request.path, "violation": str(violation)}
        )


def _record(
    state: SimulatorState,
    request: web.Request,
    raw: bytes,
    received: datetime,
    status: int | None,
    extra: dict[str, Any],
) -> None:
    state.journal.append(
        {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "body": _parse_body(raw),
            "status": status,
            "time": iso(received),
            # Whose bucket the request drew on: the bench replays ARM's buckets per principal.
            "principal": _principal_of(request),
            **extra,
        }
    )


def _principal_of(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return request.app[TOKENS_KEY].principal(token.strip())


def _drop(request: web.Request) -> web.Response:
    """Close the connection without a byte of answer: the client sees the server hang up."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=499)  # never written: the transport is gone


# -- /_lab control plane -----------------------------------------------------------------------


async def lab_token(request: web.Request) -> web.Response:
    try:
        payload = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = None
    fields = payload if isinstance(payload, dict) else {}
    secret, client_id = fields.get("client_secret"), fields.get("client_id") or DEFAULT_PRINCIPAL
    issued = (
        request.app[TOKENS_KEY].issue(secret, str(client_id)) if isinstance(secret, str) else None
    )
    if issued is None:
        return _json(
            {"error": "invalid_client", "error_description": "The client secret is wrong."},
            status=401,
        )
    token, expires_on = issued
    return _json(
        {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": expires_on - int(time.time()),
            "expires_on": expires_on,
        }
    )


async def lab_journal(request: web.Request) -> web.Response:
    journal = request.app[STATE_KEY].journal
    since = request.query.get("since", "0")
    if not since.isdigit():
        return _json(
            {"error": {"code": "InvalidSince", "message": "since must be a non-negative integer"}},
            status=400,
        )
    return _json(journal[int(since) :])


async def lab_clear_journal(request: web.Request) -> web.Response:
    request.app[STATE_KEY].journal.clear()
    return web.Response(status=204)


async def lab_add_fault(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        fault = FAULT_ADAPTER.validate_json(await request.read())
    except ValidationError as err:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in err.errors()
        ]
        return _json(
            {"error": {"code": "InvalidFault", "message": "; ".join(problems)}}, status=400
        )
    fault_id = state.faults.add(fault)
    return _json({"id": fault_id, **fault.model_dump(mode="json")}, status=201)


async def lab_list_faults(request: web.Request) -> web.Response:
    return _json(request.app[STATE_KEY].faults.describe())


async def lab_clear_faults(request: web.Request) -> web.Response:
    request.app[STATE_KEY].faults.clear()
    return web.Response(status=204)


async def lab_schema(request: web.Request) -> web.Response:
    """What the simulator answered that real ASR is not known to send (lab/asr_sim/schema.py)."""
    state = request.app[STATE_KEY]
    return _json({"checked": state.schema_check, "violations": state.schema_violations})


async def lab_state(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    now = state.clock()
    items = []
    for item in state.items.values():
        registers_at = item.agent_registers_at()
        protection = item.onprem_protection
        items.append(
            {
                "name": item.name,
                "vm_name": item.spec.vm_name,
                "vm_id": item.vm_id,
                "phase": item.phase.value,
                "resource": views.item_resource(state, item.name, now),
                "current_job": item.current_job.name if item.current_job else None,
                "replication_group": item.spec.replication_group,
                "failover_recovery_point": (
                    item.failover_point.name if item.failover_point is not None else None
                ),
                "committed_at": iso(item.committed_at),
                "agent_registers_at": iso(registers_at),
                "agent_registered": item.agent_registered(now),
                "master_target": item.master_target_id,
                # The reprotect to on-premises: what it was given and when the initial
                # replication completes (health Normal, first recovery point).
                "onprem_protection": (
                    {
                        "master_target_id": protection.request.master_target_id,
                        "process_server_id": protection.request.process_server_id,
                        "retention_drive": protection.request.retention_drive,
                        "datastore_name": protection.request.datastore_name,
                        "alternate_location": protection.request.alternate_location,
                        "protected_at": iso(protection.protected_at),
                        "initial_replication_completes_at": iso(protection.healthy_at),
                    }
                    if protection is not None
                    else None
                ),
                "azure_vm": {
                    "name": item.azure_vm.name,
                    "power_state": item.azure_vm.power_state,
                    "deleted": item.azure_vm.deleted_at is not None,
                    "deleted_at": iso(item.azure_vm.deleted_at),
                },
            }
        )
    calls = state.effects.calls
    return _json(
        {
            "started_at": iso(state.started_at),
            "now": iso(now),
            "items": items,
            "jobs": [views.job_resource(state, j) for j in state.jobs.values()],
            # What each operation was asked to do, e.g. the recovery point of a failover.
            "operations": [
                {
                    "job": j.name,
                    "operation": j.operation.value,
                    "item": j.item.name if j.item is not None else None,
                    "recovery_plan": j.plan.name if j.plan is not None else None,
                    "state": j.state,
                    "start_time": iso(j.start_time),
                    "request_body": j.request_body,
                }
                for j in state.jobs.values()
            ],
            "faults": state.faults.describe(),
            # Hyper-V: the hosts as providers, and what the failbacks did on them.
            "hyperv_providers": [
                {"host": p["properties"]["friendlyName"], "name": p["name"], "id": p["id"]}
                for p in (hyperv.providers(state, now) if state.architecture == "hyperv" else [])
            ],
            "hyperv_effects": state.hyperv_effects.calls,
            "throttled": dict(request.app[THROTTLE_KEY].refused),
            "throttled_by_principal": dict(request.app[THROTTLE_KEY].refused_by_principal),
            "vcenter_effects": [
                {
                    "action": c.action,
                    "vm_name": c.vm_name,
                    "time": iso(c.time),
                    "host": c.host,
                    "datastore": c.datastore,
                }
                for c in calls
            ],
        }
    )


def build_app(
    state: SimulatorState, tokens: TokenIssuer, identity: LabIdentityProvider | None = None
) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[STATE_KEY] = state
    app[TOKENS_KEY] = tokens
    app[THROTTLE_KEY] = ArmThrottle(state.scenario.azure.throttling)
    if identity is not None:
        # Entra ID's token and key endpoints for the lab's people (lab/identity.py).
        add_identity_routes(app, identity)
    app.router.add_post("/_lab/token", lab_token)
    app.router.add_get("/_lab/journal", lab_journal)
    app.router.add_delete("/_lab/journal", lab_clear_journal)
    app.router.add_post("/_lab/faults", lab_add_fault)
    app.router.add_get("/_lab/faults", lab_list_faults)
    app.router.add_delete("/_lab/faults", lab_clear_faults)
    app.router.add_get("/_lab/state", lab_state)
    app.router.add_get("/_lab/schema", lab_schema)
    app.router.add_route("*", "/{tail:.*}", handle_arm)
    return app

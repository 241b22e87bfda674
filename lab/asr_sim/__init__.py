"""HTTPS simulator of the Azure Site Recovery ARM API (and the few Compute calls failback needs).

See lab/ASR_SIMULATOR.md. Start it with `python -m lab.asr_sim ...`, `start_simulator(config)`
inside an event loop, or `SimulatorThread(config)` from synchronous code.
"""

from lab.asr_sim.effects import (
    PyVmomiVCenterEffects,
    RecordedEffect,
    RecordingVCenterEffects,
    VCenterEffectError,
    VCenterEffects,
    VCenterTarget,
)
from lab.asr_sim.recovery_points import RecoveryPoint, generate_recovery_points
from lab.asr_sim.server import (
    RunningSimulator,
    SimulatorConfig,
    SimulatorThread,
    parse_vcenter_url,
    start_simulator,
)
from lab.asr_sim.state import (
    AGENT_NOT_INSTALLED_CODE,
    CS_UNREACHABLE_CODE,
    DATASTORE_NOT_ACCESSIBLE_CODE,
    OS_NOT_SUPPORTED_FOR_FAILBACK_CODE,
    PROTECTION_FAILED_CODE,
    VCENTER_NOT_CONNECTED_CODE,
    VM_NOT_IN_CS_DATABASE_CODE,
)
from lab.asr_sim.views import (
    CS_UNREACHABLE_HEALTH_CODE,
    MASTER_TARGET_UNHEALTHY_CODE,
    MT_HOST_NOT_DISCOVERED_CODE,
    PROCESS_SERVER_UNHEALTHY_CODE,
    REPLICATION_UNHEALTHY_CODE,
)

__all__ = [
    "AGENT_NOT_INSTALLED_CODE",
    "CS_UNREACHABLE_CODE",
    "CS_UNREACHABLE_HEALTH_CODE",
    "DATASTORE_NOT_ACCESSIBLE_CODE",
    "MASTER_TARGET_UNHEALTHY_CODE",
    "MT_HOST_NOT_DISCOVERED_CODE",
    "OS_NOT_SUPPORTED_FOR_FAILBACK_CODE",
    "PROCESS_SERVER_UNHEALTHY_CODE",
    "PROTECTION_FAILED_CODE",
    "REPLICATION_UNHEALTHY_CODE",
    "VCENTER_NOT_CONNECTED_CODE",
    "VM_NOT_IN_CS_DATABASE_CODE",
    "PyVmomiVCenterEffects",
    "RecordedEffect",
    "RecordingVCenterEffects",
    "RecoveryPoint",
    "RunningSimulator",
    "SimulatorConfig",
    "SimulatorThread",
    "VCenterEffectError",
    "VCenterEffects",
    "VCenterTarget",
    "generate_recovery_points",
    "parse_vcenter_url",
    "start_simulator",
]

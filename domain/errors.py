"""Error types shared by activities and workflows (the `type` of an ApplicationError).

A test matches on these; an operator reads them in the Web UI. Kept free of Temporal imports so
pure code and the CLI can name them too.
"""

MACHINE_NOT_FOUND = "MachineNotFound"
PLAN_NOT_FOUND = "RecoveryPlanNotFound"
RECOVERY_POINT_REFUSED = "RecoveryPointRefused"
OPERATION_NOT_ALLOWED = "OperationNotAllowed"
ASR_JOB_FAILED = "AsrJobFailed"
ASR_REQUEST_REFUSED = "AsrRequestRefused"
# Throttled (429) or unavailable (5xx) with an answer: nothing was started; retried when ARM says.
ASR_BUSY = "AsrBusy"
AGENT_NOT_REGISTERED = "AgentNotRegistered"
# A re-protect to Azure failed for another reason (or one ASR words differently): inside the
# agent wait it is tried again (R16), after it a person decides.
REPROTECT_TO_AZURE_FAILED = "ReprotectToAzureFailed"
REPLICATION_NOT_HEALTHY = "ReplicationNotHealthy"
NOT_READY = "NotReady"
NO_RECOVERY_POINT = "NoRecoveryPoint"
FAILBACK_FAILED = "FailbackFailed"
CONFIGURATION_INVALID = "ConfigurationInvalid"
# An item replicates with a provider whose failback this release does not drive.
UNSUPPORTED_ARCHITECTURE = "UnsupportedArchitecture"
# R28-R31: a decision (or the start) without the identity or authority the failback requires.
NOT_AUTHORIZED = "NotAuthorized"

# Errors that the same request cannot fix by being sent again.
NON_RETRYABLE = [
    MACHINE_NOT_FOUND,
    UNSUPPORTED_ARCHITECTURE,
    PLAN_NOT_FOUND,
    RECOVERY_POINT_REFUSED,
    OPERATION_NOT_ALLOWED,
    ASR_JOB_FAILED,
    ASR_REQUEST_REFUSED,
    AGENT_NOT_REGISTERED,
    REPROTECT_TO_AZURE_FAILED,
    REPLICATION_NOT_HEALTHY,
    NOT_READY,
    NO_RECOVERY_POINT,
    CONFIGURATION_INVALID,
]


class FailbackError(Exception):
    """A failure with one of the types above, raised by code that knows nothing of Temporal
    (the gateways, the reads, domain rules); the activities turn it into an ApplicationError of
    the same type, the CLI prints its message."""

    def __init__(self, message: str, type: str, *details: object, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.details = details
        self.retryable = retryable

"""The JSON documents stagger writes and reads: one pydantic model per document (group, hold,
pause, event, status, history page, node, node report, denial, error), used by the HTTP API,
every `--json` of the CLI, notification payloads and the FleetLock client backend (which reads
a stagger server's answers back). `/openapi.json` is generated from these models.

One time format in every document: RFC 3339 in UTC with `Z` (core.times.rfc3339). History is
newest first everywhere. The store's own encoding (backends/codec.py) is separate and
versioned: a change here never changes what is stored.
"""

from stagger.api.base import By, Instant, MaybeInstant
from stagger.api.errors import DENIAL_KINDS, ErrorKind, ErrorModel
from stagger.api.groups import (
    MAX_GROUP_SECONDS,
    MIN_GROUP_SECONDS,
    ActorRequest,
    ConfigureRequest,
    DeniedModel,
    EventModel,
    GrantedModel,
    GroupModel,
    HealthModel,
    HistoryModel,
    HoldModel,
    PauseModel,
    PauseRequest,
    PauseResponse,
    Reports,
    ResumeResponse,
    SetMaxRequest,
    SetMaxResponse,
    StatusModel,
    TouchResponse,
    UnlockResponse,
)
from stagger.api.nodes import (
    ForgetResponse,
    HealthResultModel,
    NodeModel,
    NodeReportRequest,
    NodesModel,
    ReportResponse,
    UnreadableModel,
)

__all__ = [
    "DENIAL_KINDS",
    "MAX_GROUP_SECONDS",
    "MIN_GROUP_SECONDS",
    "ActorRequest",
    "By",
    "ConfigureRequest",
    "DeniedModel",
    "ErrorKind",
    "ErrorModel",
    "EventModel",
    "ForgetResponse",
    "GrantedModel",
    "GroupModel",
    "HealthModel",
    "HealthResultModel",
    "HistoryModel",
    "HoldModel",
    "Instant",
    "MaybeInstant",
    "NodeModel",
    "NodeReportRequest",
    "NodesModel",
    "PauseModel",
    "PauseRequest",
    "PauseResponse",
    "ReportResponse",
    "Reports",
    "ResumeResponse",
    "SetMaxRequest",
    "SetMaxResponse",
    "StatusModel",
    "TouchResponse",
    "UnlockResponse",
    "UnreadableModel",
]

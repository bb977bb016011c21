"""The OpenAPI 3.1 document served at /openapi.json: paths written here, schemas generated
from the document models (stagger.api), so the document cannot drift from what is sent."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from stagger import __version__, api
from stagger.core.listing import DEFAULT_PAGE, MAX_PAGE, STATE_FILTERS
from stagger.core.semaphore import (
    GROUP_RE,
    HISTORY_LIMIT,
    MAX_GROUP_LEN,
    MAX_ID_LEN,
    NODE_ID_RE,
    NODE_ID_RULE,
)
from stagger.server.settings import BY_RE

_MODELS: list[type[BaseModel]] = [
    api.ErrorModel,
    api.StatusModel,
    api.GroupModel,
    api.HistoryModel,
    api.SetMaxRequest,
    api.SetMaxResponse,
    api.ConfigureRequest,
    api.PaceRequest,
    api.PaceResponse,
    api.PauseRequest,
    api.PauseResponse,
    api.ActorRequest,
    api.ResumeResponse,
    api.UnlockResponse,
    api.TouchResponse,
    api.NodeReportRequest,
    api.ReportResponse,
    api.NodesModel,
    api.ForgetResponse,
    api.AskRebootRequest,
    api.AskRebootResponse,
    api.ClearRebootResponse,
    api.HealthModel,
    api.BlockersModel,
    api.RolloutModel,
    api.RolloutRequest,
    api.ClearRolloutResponse,
    api.MaxFailuresRequest,
    api.MaxFailuresResponse,
]

_REASONS = {
    400: "invalid_request or invalid_group",
    401: "unauthorized: no or unknown token (auth is on)",
    403: "forbidden: the token may not do this",
    404: "unknown_group (policy refuse) or not_found",
    409: "node_holds_slot: the node holds a slot; release it first (the body names the group)",
    413: "payload_too_large: the body is over 64 KiB",
    423: "failed_lock_semaphore_full, failed_lock_paused, rollout_waiting or blocked (a blocker "
    "says no)",
    503: "backend_unavailable: the store did not answer; retry later",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _responses(ok: dict[str, Any] | None, *codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ok is not None:
        out["200"] = {"description": "done", "content": _json(ok)}
    for code in (*codes, 401, 403, 503):
        out[str(code)] = {"description": _REASONS[code], "content": _json(_ref("ErrorModel"))}
    return out


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": _json(schema)}


# The id and group rules of core.semaphore, as the server applies them (no leading dot).
GROUP_SCHEMA = {"type": "string", "pattern": GROUP_RE.pattern, "maxLength": MAX_GROUP_LEN}
ID_SCHEMA = {
    "type": "string",
    "pattern": NODE_ID_RE.pattern,
    "minLength": 1,
    "maxLength": MAX_ID_LEN,
}
GROUP = {
    "name": "group",
    "in": "path",
    "required": True,
    "schema": GROUP_SCHEMA,
    "description": "group name: letters, digits, '.' and '-', not starting with '.'",
}
ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": ID_SCHEMA,
    "description": f"the node's id: {NODE_ID_RULE}",
}
# `?by=`: who acts, recorded in history; no control characters (the server's BY_RE).
BY = {
    "name": "by",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LEN, "pattern": BY_RE.pattern},
    "description": "who acts, recorded in history (default: the token's name)",
}
LIMIT = {
    "name": "limit",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": HISTORY_LIMIT, "default": 100},
}
NODE_LIMIT = {
    "name": "limit",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE},
    "description": "the most rows of this page",
}
CURSOR = {
    "name": "cursor",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "the previous page's next_cursor, unchanged",
}
SINCE = {
    "name": "since",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "format": "date-time"},
    "description": "RFC 3339 with an offset: only what happened at or after it",
}
PREFIX = {
    "name": "q",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "maxLength": MAX_ID_LEN},
    "description": "only node ids starting with this",
}
STATE = {
    "name": "state",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": list(STATE_FILTERS)},
    "description": "only nodes in this state ('silent': no report for silent_after)",
}
GROUP_FILTER = {
    "name": "group",
    "in": "query",
    "required": False,
    "schema": GROUP["schema"],
    "description": "only this group's",
}
FLEETLOCK_HEADER = {
    "name": "fleet-lock-protocol",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "enum": ["true"]},
}
FLEETLOCK_BODY = {
    "type": "object",
    "required": ["client_params"],
    "properties": {
        "client_params": {
            "type": "object",
            "required": ["id", "group"],
            "properties": {
                "id": ID_SCHEMA,
                "group": GROUP_SCHEMA,
            },
        }
    },
}


def _fleetlock(summary: str, *codes: int) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "tags": ["fleetlock"],
            "parameters": [FLEETLOCK_HEADER],
            "requestBody": _body(FLEETLOCK_BODY),
            "responses": _responses({"type": "object"}, 400, 404, 413, *codes),
        }
    }


def _paths() -> dict[str, Any]:
    admin = ["admin"]
    return {
        "/v1/pre-reboot": _fleetlock("FleetLock RecursiveLock: take (or keep) a slot", 423),
        "/v1/steady-state": _fleetlock("FleetLock UnlockIfHeld: give back a slot if held"),
        "/v1/status": {
            "get": {
                "summary": "every group, its holds and pauses",
                "tags": ["status"],
                "responses": _responses(_ref("StatusModel")),
            }
        },
        "/v1/blockers": {
            "get": {
                "summary": "the server's blockers and their last verdicts",
                "tags": ["status"],
                "responses": _responses(_ref("BlockersModel")),
            }
        },
        "/v1/history": {
            "get": {
                "summary": "a page of the events of every group, newest first",
                "tags": ["status"],
                "parameters": [LIMIT, CURSOR, GROUP_FILTER, SINCE, PREFIX],
                "responses": _responses(_ref("HistoryModel"), 400),
            }
        },
        "/v1/groups/{group}": {
            "get": {
                "summary": "one group",
                "tags": ["status"],
                "parameters": [GROUP],
                "responses": _responses(_ref("GroupModel"), 400, 404),
            }
        },
        "/v1/groups/{group}/history": {
            "get": {
                "summary": "a page of one group's events, newest first",
                "tags": ["status"],
                "parameters": [GROUP, LIMIT, CURSOR, SINCE, PREFIX],
                "responses": _responses(_ref("HistoryModel"), 400, 404),
            }
        },
        "/v1/groups/{group}/pace": {
            "put": {
                "summary": "set how long a freed slot waits before it is granted again, live",
                "tags": admin,
                "parameters": [GROUP],
                "requestBody": _body(_ref("PaceRequest")),
                "responses": _responses(_ref("PaceResponse"), 400, 413),
            }
        },
        "/v1/groups/{group}/max": {
            "put": {
                "summary": "set the group's slots or percentage, live (lowering evicts nobody)",
                "tags": admin,
                "parameters": [GROUP],
                "requestBody": _body(_ref("SetMaxRequest")),
                "responses": _responses(_ref("SetMaxResponse"), 400, 413),
            }
        },
        "/v1/groups/{group}/config": {
            "put": {
                "summary": "set the group's hold_ttl and stale_after, live",
                "tags": admin,
                "parameters": [GROUP],
                "requestBody": _body(_ref("ConfigureRequest")),
                "responses": _responses(_ref("GroupModel"), 400, 413),
            }
        },
        "/v1/groups/{group}/pause": {
            "post": {
                "summary": "pause reboots in the group (holders keep their slots)",
                "tags": admin,
                "parameters": [GROUP],
                "requestBody": _body(_ref("PauseRequest")),
                "responses": _responses(_ref("PauseResponse"), 400, 413),
            }
        },
        "/v1/groups/{group}/resume": {
            "post": {
                "summary": "lift the group's pause",
                "tags": admin,
                "parameters": [GROUP],
                "requestBody": _body(_ref("ActorRequest"), required=False),
                "responses": _responses(_ref("ResumeResponse"), 400, 413),
            }
        },
        "/v1/pause": {
            "post": {
                "summary": "pause reboots in every group",
                "tags": admin,
                "requestBody": _body(_ref("PauseRequest")),
                "responses": _responses(_ref("PauseResponse"), 400, 413),
            }
        },
        "/v1/resume": {
            "post": {
                "summary": "lift the fleet-wide pause",
                "tags": admin,
                "requestBody": _body(_ref("ActorRequest"), required=False),
                "responses": _responses(_ref("ResumeResponse"), 400, 413),
            }
        },
        "/v1/groups/{group}/holds/{id}": {
            "delete": {
                "summary": "release another id's hold (an operator's unlock)",
                "tags": admin,
                "parameters": [GROUP, ID, BY],
                "responses": _responses(_ref("UnlockResponse"), 400),
            }
        },
        "/v1/groups/{group}/holds/{id}/touch": {
            "post": {
                "summary": "a holder's heartbeat (node token for the group, or admin)",
                "tags": ["agent"],
                "parameters": [GROUP, ID],
                "responses": _responses(_ref("TouchResponse"), 400),
            }
        },
        "/v1/nodes": {
            "get": {
                "summary": "a page of the nodes: reporting stagger agents, and FleetLock-only "
                "clients known from their lock activity, with totals per state",
                "tags": ["status"],
                "parameters": [NODE_LIMIT, CURSOR, GROUP_FILTER, STATE, SINCE, PREFIX],
                "responses": _responses(_ref("NodesModel"), 400),
            }
        },
        "/v1/nodes/{id}": {
            "delete": {
                "summary": "forget a node: remove its report and record `forgotten` in its "
                "group's history (refused while it holds a slot; an agent still running there "
                "reports itself back)",
                "tags": admin,
                "parameters": [ID, BY],
                "responses": _responses(_ref("ForgetResponse"), 400, 409),
            }
        },
        "/v1/nodes/{id}/report": {
            "post": {
                "summary": "a stagger agent's report of its cycle (node token for the "
                "report's group, or admin); FleetLock-only clients never call it",
                "tags": ["agent"],
                "parameters": [ID],
                "requestBody": _body(_ref("NodeReportRequest")),
                "responses": _responses(_ref("ReportResponse"), 400, 413),
            }
        },
        "/v1/nodes/{id}/pause": {
            "post": {
                "summary": "pause one node in every group: its locks are denied "
                "failed_lock_paused, its hold stays (stagger pause --node)",
                "tags": admin,
                "parameters": [ID],
                "requestBody": _body(_ref("PauseRequest")),
                "responses": _responses(_ref("PauseResponse"), 400, 413),
            }
        },
        "/v1/nodes/{id}/resume": {
            "post": {
                "summary": "lift one node's pause",
                "tags": admin,
                "parameters": [ID],
                "requestBody": _body(_ref("ActorRequest"), required=False),
                "responses": _responses(_ref("ResumeResponse"), 400, 413),
            }
        },
        "/v1/nodes/{id}/reboot": {
            "post": {
                "summary": "ask the node's agent for an emergency reboot: it skips its window "
                "(not blackouts unless ignore_blackouts, never a pause) and still takes a slot "
                "(stagger need-reboot --now --node)",
                "tags": admin,
                "parameters": [ID],
                "requestBody": _body(_ref("AskRebootRequest")),
                "responses": _responses(_ref("AskRebootResponse"), 400, 413),
            },
            "delete": {
                "summary": "drop the node's ask: its agent once rebooted for it (node token, "
                "with ?group=), or an admin",
                "tags": ["agent"],
                "parameters": [
                    ID,
                    {
                        "name": "group",
                        "in": "query",
                        "required": False,
                        "schema": GROUP_SCHEMA,
                        "description": "the node's group (for its node token); omit as admin",
                    },
                    {
                        "name": "done_by",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "format": "date-time"},
                        "description": "drop only an ask made at or before this time "
                        "(the node's last reboot)",
                    },
                ],
                "responses": _responses(_ref("ClearRebootResponse"), 400),
            },
        },
        "/v1/groups/{group}/max-failures": {
            "put": {
                "summary": "set the group's error budget: when that many of its nodes are "
                "halted it pauses itself (stagger set-max --max-failures)",
                "tags": admin,
                "parameters": [GROUP],
                "requestBody": _body(_ref("MaxFailuresRequest")),
                "responses": _responses(_ref("MaxFailuresResponse"), 400, 413),
            }
        },
        "/v1/rollout": {
            "get": {
                "summary": "the rollout: its stages in order, each with its state and nodes",
                "tags": ["status"],
                "responses": _responses(_ref("RolloutModel")),
            },
            "put": {
                "summary": "begin a rollout (the [rollout] table as JSON; every stage starts "
                "again); refused (400) when a group is in two stages or a value is out of range",
                "tags": admin,
                "requestBody": _body(_ref("RolloutRequest")),
                "responses": _responses(_ref("RolloutModel"), 400, 413),
            },
            "delete": {
                "summary": "end the rollout: every group grants as if there were none",
                "tags": admin,
                "requestBody": _body(_ref("ActorRequest"), required=False),
                "responses": _responses(_ref("ClearRolloutResponse"), 400, 413),
            },
        },
        "/healthz": {
            "get": {
                "summary": "the process is alive",
                "tags": ["probes"],
                "responses": {
                    "200": {"description": "alive", "content": _json(_ref("HealthModel"))}
                },
            }
        },
        "/readyz": {
            "get": {
                "summary": "the backend answers",
                "tags": ["probes"],
                "responses": {
                    "200": {"description": "ready", "content": _json(_ref("HealthModel"))},
                    "503": {"description": _REASONS[503], "content": _json(_ref("ErrorModel"))},
                },
            }
        },
    }


@cache
def document(prefix: str = "") -> bytes:
    _, defs = models_json_schema(
        [(m, "serialization") for m in _MODELS], ref_template="#/components/schemas/{model}"
    )
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "stagger server",
            "version": __version__,
            "description": (
                "FleetLock v1 (for Zincati, Flatcar and stagger agents) plus stagger's status "
                "and admin API. Errors are {kind, value} with kind from ErrorKind."
            ),
        },
        "paths": _paths(),
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
        "security": [{}, {"bearer": []}, {"basic": []}],
    }
    if prefix:
        doc["servers"] = [{"url": prefix}]
    return json.dumps(doc, separators=(",", ":")).encode()

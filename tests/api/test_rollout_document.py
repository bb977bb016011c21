"""The rollout's document (api/rollout.py RolloutModel, `GET /v1/rollout`): each stage names
at most MAX_STAGE_NAMES nodes per list, counts them all in `totals`, and says which lists are
cut in `truncated`; a document from a server before `totals` (every node named) reads with
its lists' lengths as totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stagger.api import RolloutModel, StageModel
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport
from stagger.core.rollout_gate import Rollout, Stage
from stagger.core.rollout_status import MAX_STAGE_NAMES, status

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
N = MAX_STAGE_NAMES


def test_a_stage_past_the_bound_names_the_first_nodes_counts_all_and_says_what_is_cut() -> None:
    reports = [NodeReport(f"w{i:05}", "web", State.WAITING, needed_since=T0) for i in range(5000)]
    reports += [NodeReport("sick", "web", State.HALTED)]
    reports += [NodeReport(f"i{i:05}", "web", State.IDLE) for i in range(5000)]
    rollout = Rollout((Stage(("web",)), Stage(("db",))), T0, "operator:a")
    doc = RolloutModel.of(status(rollout, {}, reports, T0 + timedelta(minutes=1)))
    web, db = doc.stages
    assert web.totals.model_dump() == {"done": 5000, "pending": 5000, "halted": 1, "left_behind": 0}
    assert web.pending == [f"w{i:05}" for i in range(N)]
    assert (len(web.done), web.halted, web.left_behind) == (N, ["sick"], [])
    assert web.truncated == ["done", "pending"]
    assert (db.totals.model_dump(), db.truncated) == (dict.fromkeys(db.totals.model_dump(), 0), [])
    text = doc.model_dump_json()
    assert len(text) < 4000  # two lists of N names (~2.5 KB); every node named: ~90 KB
    assert RolloutModel.model_validate_json(text) == doc


def test_a_document_without_totals_counts_its_whole_lists() -> None:
    """As an older server sends it: every node named, no totals, nothing cut."""
    old = {
        "number": 1,
        "groups": ["web"],
        "state": "open",
        "bake_seconds": 0.0,
        "done": ["a", "b"],
        "pending": ["c"],
        "halted": [],
    }
    stage = StageModel.model_validate(old)
    assert stage.totals.model_dump() == {"done": 2, "pending": 1, "halted": 0, "left_behind": 0}
    assert stage.truncated == []

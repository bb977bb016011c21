"""core/blockers.py as a specification: Alertmanager's matchers, what one answer means, and
which groups a verdict blocks. No I/O; time passed in."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagger.core.blockers import (
    Alert,
    Blocker,
    BlockerKind,
    BlockIndex,
    MatchOp,
    alerts_url,
    judge_alerts,
    judge_http,
    not_checked,
    parse_alerts,
    parse_matcher,
    unreachable,
)
from stagger.core.errors import InvalidInput

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def am(*matchers: str, name: str = "alerts", groups: frozenset[str] | None = None) -> Blocker:
    return Blocker(
        name,
        BlockerKind.ALERTMANAGER,
        "http://am.example:9093",
        tuple(parse_matcher(m) for m in matchers),
        groups,
    )


def firing(**labels: str) -> Alert:
    return Alert(labels, "active")


# --- matchers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("severity=critical", {"severity": "critical"}, True),
        ("severity=critical", {"severity": "warning"}, False),
        ("severity!=critical", {"severity": "warning"}, True),
        ("severity!=critical", {"severity": "critical"}, False),
        ("team=~web|api", {"team": "api"}, True),
        ("team=~web|api", {"team": "db"}, False),
        ("team!~web|api", {"team": "db"}, True),
        ("team!~web|api", {"team": "web"}, False),
    ],
)
def test_each_operator_means_what_it_means_in_alertmanager(
    text: str, labels: dict[str, str], expected: bool
) -> None:
    assert parse_matcher(text).matches(labels) is expected


def test_a_regular_expression_matches_the_whole_value_not_a_part() -> None:
    m = parse_matcher("team=~web")
    assert m.matches({"team": "web"})
    assert not m.matches({"team": "webshop"})
    assert not m.matches({"team": "the-web"})


def test_a_missing_label_is_the_empty_string() -> None:
    assert parse_matcher("team!=web").matches({})
    assert not parse_matcher("team=web").matches({})
    assert parse_matcher('team=""').matches({})
    assert parse_matcher("team=~").matches({})


def test_a_quoted_value_is_unquoted_with_its_escapes() -> None:
    m = parse_matcher('summary="say \\"hi\\", c:\\\\"')
    assert m.op is MatchOp.EQUAL
    assert m.value == 'say "hi", c:\\'


def test_spaces_around_the_operator_are_allowed() -> None:
    m = parse_matcher("  severity =~ crit.*  ")
    assert (m.name, m.op, m.value) == ("severity", MatchOp.REGEX, "crit.*")


def test_the_filter_sent_to_alertmanager_quotes_the_value() -> None:
    assert parse_matcher("team=~web|api").filter_text() == 'team=~"web|api"'
    assert parse_matcher('x="a\\"b"').filter_text() == 'x="a\\"b"'


label_values = st.text(alphabet='abxy-_.|*"\\', max_size=6)


def quoted(value: str) -> str:
    """`value` as a quoted matcher value (Alertmanager's escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@given(
    value=label_values,
    labels=st.dictionaries(st.sampled_from(["team", "severity"]), label_values, max_size=2),
)
def test_negated_operators_are_the_opposites_and_an_escaped_regex_is_equality(
    value: str, labels: dict[str, str]
) -> None:
    eq = parse_matcher(f"team={quoted(value)}")
    assert eq.value == value
    assert parse_matcher(f"team!={quoted(value)}").matches(labels) is not eq.matches(labels)
    regex = parse_matcher(f"team=~{quoted(re.escape(value))}")
    assert regex.matches(labels) is eq.matches(labels)
    not_regex = parse_matcher(f"team!~{quoted(re.escape(value))}")
    assert not_regex.matches(labels) is not regex.matches(labels)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("severity", "is not LABEL OP VALUE"),
        ("=critical", "is not LABEL OP VALUE"),
        ("1abc=x", "is not LABEL OP VALUE"),
        ("team=~(web", "invalid regular expression"),
        ('team="web', "stray quote"),
    ],
)
def test_a_bad_matcher_is_one_sentence_with_an_example(text: str, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_matcher(text)
    assert says in caught.value.message
    assert "severity=critical" in caught.value.message
    assert "\n" not in caught.value.message


# --- the request ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base",
    [
        "http://am:9093",
        "http://am:9093/",
        "http://am:9093/api/v2",
        "http://am:9093/api/v2/",
        "http://am:9093/api/v2/alerts",
    ],
)
def test_the_alerts_endpoint_is_found_from_any_form_of_the_url(base: str) -> None:
    assert alerts_url(base) == "http://am:9093/api/v2/alerts"


def test_a_path_prefix_and_a_query_are_kept() -> None:
    assert alerts_url("https://h/am/?x=1") == "https://h/am/api/v2/alerts?x=1"


def test_the_request_asks_for_active_alerts_neither_silenced_nor_inhibited() -> None:
    url, params = am("severity=critical", "team=~web|api").request()
    assert url == "http://am.example:9093/api/v2/alerts"
    assert ("active", "true") in params
    assert ("silenced", "false") in params
    assert ("inhibited", "false") in params
    assert [v for k, v in params if k == "filter"] == ['severity="critical"', 'team=~"web|api"']


def test_an_http_blocker_asks_its_url_as_written() -> None:
    b = Blocker("gate", BlockerKind.HTTP, "http://h/ready?x=1")
    assert b.request() == ("http://h/ready?x=1", ())


# --- what an answer means -------------------------------------------------------------------------


def test_a_matching_active_alert_blocks_and_is_named() -> None:
    v = judge_alerts(
        am("severity=critical"),
        [firing(alertname="HostDown", severity="critical", instance="a")],
        NOW,
    )
    assert v.blocking
    assert v.checked_at == NOW
    assert v.alerts == ("HostDown",)
    assert v.reason == "blocker alerts: 1 alert firing: HostDown (severity=critical)"


def test_every_matcher_must_match() -> None:
    alerts = [firing(alertname="A", severity="critical", team="db")]
    assert not judge_alerts(am("severity=critical", "team=~web|api"), alerts, NOW).blocking
    assert judge_alerts(am("severity=critical", "team=~web|db"), alerts, NOW).blocking


@pytest.mark.parametrize(
    "alert",
    [
        Alert({"alertname": "A"}, "suppressed", silenced_by=("s1",)),
        Alert({"alertname": "A"}, "suppressed", inhibited_by=("f1",)),
        Alert({"alertname": "A"}, "active", silenced_by=("s1",)),
        Alert({"alertname": "A"}, "unprocessed"),
    ],
)
def test_silenced_inhibited_and_unprocessed_alerts_do_not_block(alert: Alert) -> None:
    v = judge_alerts(am(), [alert], NOW)
    assert not v.blocking
    assert v.reason == "blocker alerts: no matching alert fires"


def test_no_alert_lets_reboots_go() -> None:
    assert not judge_alerts(am("severity=critical"), [], NOW).blocking


def test_many_alerts_are_counted_not_all_named() -> None:
    alerts = [firing(alertname=f"A{i}") for i in range(5)]
    v = judge_alerts(am(), alerts, NOW)
    assert v.reason == "blocker alerts: 5 alerts firing: A0, A1, A2 and 2 more"


def test_http_2xx_lets_go_and_anything_else_blocks() -> None:
    gate = Blocker("gate", BlockerKind.HTTP, "http://h/ready")
    assert not judge_http(gate, 204, NOW).blocking
    v = judge_http(gate, 503, NOW)
    assert v.blocking
    assert "answered HTTP 503" in v.reason


def test_unreachable_blocks_and_says_fail_closed_without_the_secret() -> None:
    b = Blocker("am", BlockerKind.ALERTMANAGER, "http://user:s3cret@am:9093")
    v = unreachable(b, "ConnectError: refused", NOW)
    assert v.blocking
    assert not v.reachable
    assert "fail closed" in v.reason
    assert "s3cret" not in v.reason


def test_a_blocker_not_checked_yet_blocks() -> None:
    v = not_checked(am())
    assert v.blocking
    assert v.checked_at is None


# --- the Alertmanager v2 answer ----------------------------------------------------------------


def test_the_v2_alert_list_is_read() -> None:
    doc = [
        {
            "labels": {"alertname": "HostDown", "severity": "critical"},
            "annotations": {},
            "receivers": [{"name": "ops"}],
            "fingerprint": "abc",
            "startsAt": "2026-03-02T11:00:00.000Z",
            "updatedAt": "2026-03-02T11:00:00.000Z",
            "endsAt": "2026-03-02T13:00:00.000Z",
            "status": {"state": "suppressed", "silencedBy": ["s1"], "inhibitedBy": []},
        }
    ]
    (alert,) = parse_alerts(doc)
    assert alert.name == "HostDown"
    assert alert.silenced_by == ("s1",)
    assert not alert.firing


@pytest.mark.parametrize(
    "doc",
    [
        {"status": "success", "data": []},  # the v1 API's shape
        [{"labels": {"a": "b"}}],
        [{"labels": "x", "status": {"state": "active"}}],
        [{"labels": {}, "status": {"state": "active", "silencedBy": "s1"}}],
    ],
)
def test_an_answer_that_is_not_the_v2_list_is_refused(doc: object) -> None:
    with pytest.raises(InvalidInput):
        parse_alerts(doc)


# --- which groups ---------------------------------------------------------------------------------


def test_a_blocker_without_groups_blocks_every_group() -> None:
    b = am()
    index = BlockIndex.build([b], {"alerts": judge_alerts(b, [firing(alertname="A")], NOW)})
    blocked = index.of("anything")
    assert blocked is not None
    assert blocked.names == ("alerts",)


def test_a_blocker_with_groups_blocks_only_those() -> None:
    b = am(groups=frozenset({"web"}))
    index = BlockIndex.build([b], {"alerts": judge_alerts(b, [firing(alertname="A")], NOW)})
    assert index.of("web") is not None
    assert index.of("db") is None


def test_the_reasons_of_every_blocking_blocker_are_given() -> None:
    every = am(name="all")
    web = am(name="web-only", groups=frozenset({"web"}))
    verdicts = {
        "all": judge_alerts(every, [firing(alertname="A")], NOW),
        "web-only": judge_alerts(web, [firing(alertname="B")], NOW),
    }
    index = BlockIndex.build([every, web], verdicts)
    web_blocked, db_blocked = index.of("web"), index.of("db")
    assert web_blocked is not None
    assert db_blocked is not None
    assert web_blocked.names == ("all", "web-only")
    assert "A" in web_blocked.reason
    assert "B" in web_blocked.reason
    assert db_blocked.names == ("all",)


def test_blockers_that_let_go_block_nothing() -> None:
    b = am()
    index = BlockIndex.build([b], {"alerts": judge_alerts(b, [], NOW)})
    assert index.of("web") is None


def test_a_blocker_with_no_verdict_yet_blocks_its_groups() -> None:
    index = BlockIndex.build([am(groups=frozenset({"web"}))], {})
    assert index.of("web") is not None
    assert index.of("db") is None


def test_no_blocker_blocks_nothing() -> None:
    assert BlockIndex.build([], {}).of("web") is None


def test_interval_defaults_to_thirty_seconds() -> None:
    assert am().interval == timedelta(seconds=30)

"""config/: fragments found, masked, overridden and merged like systemd drop-ins; one strict
model; every error names the file, the key (and line) and what is allowed. Trees are built
under a temp --root, so the host's /etc is never read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stagger.backends.factory import DEFAULT_BACKEND_URL
from stagger.config import InvalidConfig, load_config
from stagger.config.loader import host_time_zone
from stagger.core.strategy import Strategy

USR, RUN, ETC = "usr/lib/stagger/config.d", "run/stagger/config.d", "etc/stagger/config.d"
EXAMPLE = """\
[agent]
id = "web-07"
group = "web"
strategy = "lock"
backend = "etcd://10.0.0.1:2379,10.0.0.2:2379"

[[window]]
days = ["Mon", "Thu"]
start = "04:00"
length = "1h30m"
time_zone = "Asia/Tokyo"

[[blackout]]
start = "2026-12-24T00:00:00+09:00"
end = "2027-01-04T00:00:00+09:00"
reason = "year-end freeze"
"""


def put(root: Path, where: str, name: str, text: str) -> Path:
    path = root / where / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def problems(root: Path | None = None, config: Path | None = None) -> list[str]:
    with pytest.raises(InvalidConfig) as caught:
        load_config(config, root)
    return [str(p) for p in caught.value.problems]


def only_problem(path: Path) -> str:
    (problem,) = problems(config=path)
    return problem


# --- discovery and merging ---------------------------------------------------------------------


def test_no_files_give_the_defaults(tmp_path: Path) -> None:
    loaded = load_config(None, tmp_path)
    assert loaded.files == ()
    assert loaded.config.agent.group == "default"
    assert loaded.config.agent.strategy is Strategy.LOCK
    assert loaded.config.agent.backend == DEFAULT_BACKEND_URL
    assert loaded.config.window == []


def test_the_issue_example_is_valid(tmp_path: Path) -> None:
    put(tmp_path, ETC, "50-example.toml", EXAMPLE)
    agent = load_config(None, tmp_path).config.agent
    assert (agent.id, agent.group, agent.backend) == (
        "web-07",
        "web",
        "etcd://10.0.0.1:2379,10.0.0.2:2379",
    )


def test_fragments_merge_in_filename_order_across_directories(tmp_path: Path) -> None:
    put(tmp_path, ETC, "10-group.toml", '[agent]\ngroup = "a"\n')
    put(tmp_path, USR, "20-group.toml", '[agent]\ngroup = "b"\n')
    loaded = load_config(None, tmp_path)
    assert loaded.config.agent.group == "b"
    assert [p.name for p in loaded.files] == ["10-group.toml", "20-group.toml"]


def test_etc_beats_run_beats_usr_lib_for_the_same_filename(tmp_path: Path) -> None:
    put(tmp_path, USR, "50-x.toml", '[agent]\ngroup = "usr"\n')
    put(tmp_path, RUN, "50-x.toml", '[agent]\ngroup = "run"\n')
    assert load_config(None, tmp_path).config.agent.group == "run"
    put(tmp_path, ETC, "50-x.toml", '[agent]\ngroup = "etc"\n')
    assert load_config(None, tmp_path).config.agent.group == "etc"


def test_a_symlink_to_dev_null_masks_a_fragment(tmp_path: Path) -> None:
    put(tmp_path, USR, "50-x.toml", '[agent]\ngroup = "usr"\n')
    (tmp_path / ETC).mkdir(parents=True)
    os.symlink("/dev/null", tmp_path / ETC / "50-x.toml")
    loaded = load_config(None, tmp_path)
    assert loaded.files == ()
    assert loaded.config.agent.group == "default"


def test_only_toml_files_are_read_and_dotfiles_are_skipped(tmp_path: Path) -> None:
    put(tmp_path, ETC, "90-off.yaml", "this is not read")
    put(tmp_path, ETC, ".50-hidden.toml", "nor = is this")
    put(tmp_path, ETC, "50-x.toml.bak", "nor this")
    assert load_config(None, tmp_path).files == ()


def test_keys_merge_one_by_one_across_fragments(tmp_path: Path) -> None:
    put(tmp_path, ETC, "10-a.toml", '[agent]\ngroup = "web"\nstrategy = "off"\n')
    put(tmp_path, ETC, "20-b.toml", '[agent]\nstrategy = "immediate"\n')
    agent = load_config(None, tmp_path).config.agent
    assert (agent.group, agent.strategy) == ("web", Strategy.IMMEDIATE)


def test_windows_and_blackouts_add_up_across_fragments(tmp_path: Path) -> None:
    window = '[[window]]\ndays = "daily"\nstart = "0{}:00"\nlength = "1h"\n'
    put(tmp_path, USR, "10-a.toml", window.format(1))
    put(tmp_path, ETC, "20-b.toml", window.format(2) + window.format(3))
    starts = [w.start for w in load_config(None, tmp_path).config.window]
    assert starts == ["01:00", "02:00", "03:00"]


def test_each_value_names_the_file_it_came_from(tmp_path: Path) -> None:
    a = put(tmp_path, ETC, "10-a.toml", '[agent]\ngroup = "web"\n')
    b = put(tmp_path, ETC, "20-b.toml", '[[window]]\ndays = "daily"\nstart = "01:00"\n'
            'length = "1h"\n')  # fmt: skip
    rows = {key: source for key, _, source in load_config(None, tmp_path).values()}
    assert rows["agent.group"] == str(a)
    assert rows["agent.strategy"] == "default"
    assert rows["window[0].start"] == str(b)


def test_config_file_replaces_the_directories(tmp_path: Path) -> None:
    put(tmp_path, ETC, "10-a.toml", '[agent]\ngroup = "from-dir"\n')
    given_file = put(tmp_path, "elsewhere", "one.toml", '[agent]\ngroup = "from-file"\n')
    loaded = load_config(given_file, tmp_path)
    assert loaded.config.agent.group == "from-file"
    assert loaded.files == (given_file,)


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    assert "does not exist" in only_problem(tmp_path / "nope.toml")


# --- the host's zone ---------------------------------------------------------------------------


def test_host_zone_comes_from_the_localtime_symlink(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.symlink("/usr/share/zoneinfo/Asia/Tokyo", tmp_path / "etc/localtime")
    assert host_time_zone(tmp_path)[0] == "Asia/Tokyo"


def test_host_zone_falls_back_to_etc_timezone(tmp_path: Path) -> None:
    put(tmp_path, "etc", "timezone", "Europe/Berlin\n")
    assert host_time_zone(tmp_path)[0] == "Europe/Berlin"


def test_host_zone_is_utc_when_nothing_names_one(tmp_path: Path) -> None:
    assert host_time_zone(tmp_path)[0] == "UTC"


def test_a_window_without_a_zone_uses_the_host_zone(tmp_path: Path) -> None:
    put(tmp_path, "etc", "timezone", "America/New_York\n")
    put(tmp_path, ETC, "10-a.toml", '[[window]]\ndays = "daily"\nstart = "04:00"\nlength = "1h"\n')
    (window,) = load_config(None, tmp_path).schedule().windows
    assert window.time_zone == "America/New_York"


# --- TOML's own types --------------------------------------------------------------------------


def test_toml_local_time_is_accepted_as_start(tmp_path: Path) -> None:
    path = put(tmp_path, "c", "x.toml", '[[window]]\ndays = "daily"\nstart = 04:00:00\n'
               'length = "1h"\n')  # fmt: skip
    assert load_config(path).config.window[0].start == "04:00"


def test_toml_offset_datetime_is_accepted_in_a_blackout(tmp_path: Path) -> None:
    path = put(tmp_path, "c", "x.toml", "[[blackout]]\nstart = 2026-12-24T00:00:00+09:00\n"
               "end = 2027-01-04T00:00:00+09:00\n")  # fmt: skip
    assert load_config(path).config.blackout[0].end.utcoffset() is not None


# --- every error message -----------------------------------------------------------------------


def test_unknown_key_names_file_line_key_and_the_allowed_keys(tmp_path: Path) -> None:
    path = put(tmp_path, "c", "x.toml", '[agent]\ngroup = "web"\ncolour = "red"\n')
    assert only_problem(path).startswith(
        f"{path}, line 3: [agent] colour: unknown key 'colour' in [agent]: allowed keys are "
        "id, group, strategy, backend, detectors, rebooter, state_path, boot_id_path"
    )


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    path = put(tmp_path, "c", "x.toml", "[identity]\ngroup = 'web'\n")  # Zincati's table
    problem = only_problem(path)
    assert "line 1" in problem
    assert "unknown key 'identity' in the top level: allowed keys are agent, window" in problem


def test_misspelt_window_table_is_an_error(tmp_path: Path) -> None:
    path = put(tmp_path, "c", "x.toml", '[[windows]]\ndays = "daily"\n')
    assert "unknown key 'windows'" in only_problem(path)


def test_unknown_key_in_a_window_names_its_number(tmp_path: Path) -> None:
    w = '[[window]]\ndays = "daily"\nstart = "04:00"\nlength = "1h"\n'
    path = put(tmp_path, "c", "x.toml", w + w + "zone = 'UTC'\n")
    problem = only_problem(path)
    assert "line 9: [[window]] #2 zone: unknown key 'zone'" in problem
    assert "days, monthly, offset, start, length, time_zone" in problem


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('strategy = "etcd-lock"', "use one of off, immediate, lock, best-effort"),
        ('group = "web servers"', "'.' and '-'"),
        ('backend = "10.0.0.1:2379"', "is not a URL: use one of sqlite:///PATH"),
        ("group = 7", "group must be a string, not int 7"),
        ('id = ""', "1 to 256 characters from A-Z"),
    ],
)
def test_bad_agent_values_say_what_is_allowed(tmp_path: Path, line: str, words: str) -> None:
    path = put(tmp_path, "c", "x.toml", f"[agent]\n{line}\n")
    problem = only_problem(path)
    assert problem.startswith(f"{path}, line 2: [agent] {line.split()[0]}: ")
    assert words in problem


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("days", '["Mon", "Funday"]', "day 'Funday' is not a day: use mon…sun"),
        ("days", "[]", "list at least one day"),
        ("days", "3", "days must be a list of day names"),
        ("start", '"4pm"', "HH:MM"),
        ("length", '"0m"', "more than 0 and at most 7 days"),
        ("length", '"8d"', "more than 0 and at most 7 days"),
        ("length", '"long"', "is not a duration"),
        ("length", "90", "length must be a string"),
        ("time_zone", '"Mars/Olympus"', "IANA name"),
    ],
)
def test_bad_window_values_say_what_is_allowed(
    tmp_path: Path, key: str, value: str, words: str
) -> None:
    fields = {"days": '"daily"', "start": '"04:00"', "length": '"1h"', key: value}
    body = "".join(f"{k} = {v}\n" for k, v in fields.items())
    path = put(tmp_path, "c", "x.toml", "[[window]]\n" + body)
    problem = only_problem(path)
    assert f"[[window]] #1 {key}: " in problem
    assert words in problem


def test_a_window_without_start_says_it_is_required(tmp_path: Path) -> None:
    path = put(tmp_path, "c", "x.toml", '[[window]]\ndays = "daily"\nlength = "1h"\n')
    assert only_problem(path) == (
        f"{path}, line 1: [[window]] #1 start: 'start' is required: "
        "the wall-clock start in the window's zone, HH:MM"
    )


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('start = "2026-12-24T00:00:00"\nend = "2027-01-04T00:00:00+09:00"', "UTC offset"),
        ("start = 2026-12-24T00:00:00\nend = 2027-01-04T00:00:00+09:00", "has no UTC offset"),
        ('start = "2027-01-04T00:00:00Z"\nend = "2026-12-24T00:00:00Z"', "end must be later"),
        ('start = 5\nend = "2026-12-24T00:00:00Z"', "is not a time"),
        ('end = "2026-12-24T00:00:00Z"', "'start' is required"),
    ],
)
def test_bad_blackouts_say_what_is_allowed(tmp_path: Path, body: str, words: str) -> None:
    path = put(tmp_path, "c", "x.toml", f"[[blackout]]\n{body}\n")
    problem = only_problem(path)
    assert "[[blackout]] #1" in problem
    assert words in problem


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("agent = 5", "[agent]: int 5 is not allowed here: use a table: [agent]"),
        ('window = "daily"', "[[window]]: str 'daily' is not allowed here: use an array"),
    ],
)
def test_a_section_of_the_wrong_type_says_what_it_should_be(
    tmp_path: Path, text: str, words: str
) -> None:
    assert words in only_problem(put(tmp_path, "c", "x.toml", text + "\n"))


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = put(tmp_path, "c", "x.toml", '[agent]\ngroup = "web\n')
    problem = only_problem(path)
    assert problem.startswith(f"{path}, line 2: is not valid TOML")


def test_a_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_bytes(b'[agent]\ngroup = "\xff"\n')
    assert "is not UTF-8 text" in only_problem(path)


def test_problems_in_several_files_are_all_reported(tmp_path: Path) -> None:
    a = put(tmp_path, ETC, "10-a.toml", '[agent]\nstrategy = "sometimes"\n')
    b = put(tmp_path, USR, "20-b.toml", "[agent]\nfoo = 1\n")
    found = problems(tmp_path)
    assert [p.split(",")[0] for p in found] == [str(a), str(b)]


def test_the_error_message_lists_every_problem(tmp_path: Path) -> None:
    put(tmp_path, ETC, "10-a.toml", '[agent]\nstrategy = "sometimes"\nfoo = 1\n')
    with pytest.raises(InvalidConfig, match="the configuration has 2 problems"):
        load_config(None, tmp_path)


# --- random input never escapes as a traceback -------------------------------------------------

KEYS = ["agent", "window", "blackout", "id", "group", "strategy", "backend", "days", "start",
        "length", "time_zone", "end", "reason", "x"]  # fmt: skip
scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=12),
    st.sampled_from(["lock", "daily", "04:00", "1h", "UTC", "2026-12-24T00:00:00Z", "Mon"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=4)


def problems_or_none(path: Path) -> list[str] | None:
    """None when the file is valid; its problems when not. Anything else raised fails."""
    try:
        load_config(path)
    except InvalidConfig as exc:
        return [str(p) for p in exc.problems]
    return None


def to_toml(value: object) -> str:
    """Inline TOML for a value (strings via JSON escapes, which TOML shares)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)
    if isinstance(value, list):
        return "[" + ", ".join(to_toml(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{k} = {to_toml(v)}" for k, v in value.items()) + "}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(documents)
def test_random_toml_is_valid_or_a_config_error(tmp_path: Path, doc: dict[str, object]) -> None:
    path = tmp_path / "random.toml"
    path.write_text("".join(f"{k} = {to_toml(v)}\n" for k, v in doc.items()))
    found = problems_or_none(path)
    assert found is None or all(p.startswith(str(path)) for p in found)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.binary(max_size=200))
def test_random_bytes_are_valid_or_a_config_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "random.toml"
    path.write_bytes(data)
    found = problems_or_none(path)
    assert found is None or found

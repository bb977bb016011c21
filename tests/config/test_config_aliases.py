"""The hyphenated detector tables, [detectors.needs-restarting] and [detectors.rpm-ostree],
are spoken of by the names operators write: in errors and in `config show`."""

from __future__ import annotations

from pathlib import Path

import pytest

from stagger.config.loader import InvalidConfig, load_config


@pytest.mark.parametrize("table", ["needs-restarting", "rpm-ostree"])
def test_an_unknown_key_in_a_hyphenated_detector_table_lists_that_tables_keys(
    tmp_path: Path, table: str
) -> None:
    path = tmp_path / "stagger.toml"
    path.write_text(f"[detectors.{table}]\nbogus = 1\n")
    with pytest.raises(InvalidConfig) as caught:
        load_config(path)
    message = str(caught.value.problems[0])
    assert "unknown key 'bogus'" in message
    assert message.endswith("allowed keys are command, interval, timeout")


def test_the_detectors_table_lists_its_hyphenated_tables_as_written(tmp_path: Path) -> None:
    path = tmp_path / "stagger.toml"
    path.write_text("[detectors]\nbogus = 1\n")
    with pytest.raises(InvalidConfig) as caught:
        load_config(path)
    assert "needs-restarting, rpm-ostree" in str(caught.value.problems[0])


def test_config_show_names_a_hyphenated_table_as_written_with_its_file(tmp_path: Path) -> None:
    path = tmp_path / "stagger.toml"
    path.write_text('[detectors.rpm-ostree]\ninterval = "2m"\n')
    rows = {key: (value, source) for key, value, source in load_config(path).values()}
    value, source = rows["detectors.rpm-ostree"]
    assert (value["interval"], source) == ("2m", str(path))
    assert "detectors.rpm_ostree" not in rows
    assert rows["detectors.needs-restarting"][1] == "default"

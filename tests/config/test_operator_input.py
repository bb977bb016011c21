"""Nothing an operator types produces a traceback: each mistake below is one sentence on
stderr naming what is wrong, and exit 2 (docs/cli.md, "Exit codes"). Through the installed
`stagger` script as a real process, so a traceback or a crash would show."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import STAGGER, assert_one_sentence, run_script, stagger_env
from etcd_support import free_port

NESTED = "a = " + "[" * 50_000 + "]" * 50_000 + "\n"


# --- configuration files -----------------------------------------------------------------------


def test_a_deeply_nested_config_is_one_sentence(tmp_path: Path) -> None:
    cfg = tmp_path / "deep.toml"
    cfg.write_text(NESTED)
    r = run_script("config", "check", "--config", str(cfg), backend=None)
    assert_one_sentence(r, 2, str(cfg), "too deeply")


def test_a_config_that_is_a_symlink_to_dev_zero_is_one_sentence(tmp_path: Path) -> None:
    cfg = tmp_path / "zero.toml"
    cfg.symlink_to("/dev/zero")
    r = run_script("config", "check", "--config", str(cfg), backend=None)
    assert_one_sentence(r, 2, str(cfg), "larger than 1 MiB")


def test_a_fragment_in_config_d_that_is_a_symlink_to_dev_zero_is_one_sentence(
    tmp_path: Path,
) -> None:
    fragments = tmp_path / "etc" / "stagger" / "config.d"
    fragments.mkdir(parents=True)
    (fragments / "10-zero.toml").symlink_to("/dev/zero")
    r = run_script("config", "show", "--root", str(tmp_path), backend=None)
    assert_one_sentence(r, 2, "10-zero.toml", "larger than 1 MiB")


@pytest.fixture
def unreadable_config() -> Iterator[Path]:
    """A config file that user nobody cannot read, in a directory nobody can enter."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run stagger as another user")
    where = Path(tempfile.mkdtemp(prefix="stagger-unreadable-"))
    where.chmod(0o755)
    cfg = where / "stagger.toml"
    cfg.write_text("[agent]\n")
    cfg.chmod(0)
    try:
        yield cfg
    finally:
        shutil.rmtree(where)


@pytest.mark.parametrize(
    "command", [("config", "check"), ("config", "show"), ("windows",), ("explain",)]
)
def test_an_unreadable_config_is_one_sentence_not_a_usage_screen(
    unreadable_config: Path, command: tuple[str, ...]
) -> None:
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    proc = subprocess.run(
        [*as_nobody, STAGGER, *command, "--config", str(unreadable_config)],
        capture_output=True,
        text=True,
        env=stagger_env(),
        timeout=60,
        check=False,
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert str(unreadable_config) in lines[0]
    assert "Permission denied" in lines[0]


# --- durations ----------------------------------------------------------------------------------


def test_a_bare_number_as_a_duration_names_the_file_the_line_and_an_example(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "stagger.toml"
    cfg.write_text('[reboot]\ndelay = 5\n\n[cycle]\nretry = 30\nbackoff = "90"\n')
    r = run_script("config", "check", "--config", str(cfg), backend=None)
    assert r.code == 2
    assert "Traceback" not in r.err
    problems = r.err.splitlines()
    assert len(problems) == 3, r.err
    delay, retry, backoff = problems
    assert f"{cfg}, line 2" in delay
    assert 'delay = "5s"' in delay
    assert f"{cfg}, line 5" in retry
    assert 'retry = "30s"' in retry
    assert f"{cfg}, line 6" in backoff
    assert 'backoff = "90s"' in backoff


@pytest.mark.parametrize(
    "section",
    ["[server]\nsilent_after = 900", '[[notify]]\nurl = "http://127.0.0.1:9/"\ntimeout = 5'],
)
def test_a_bare_number_is_refused_in_every_section_that_takes_a_duration(
    tmp_path: Path, section: str
) -> None:
    cfg = tmp_path / "stagger.toml"
    cfg.write_text(section + "\n")
    r = run_script("config", "check", "--config", str(cfg), backend=None)
    assert_one_sentence(r, 2, "has no unit")


def test_a_duration_with_a_unit_still_passes(tmp_path: Path) -> None:
    cfg = tmp_path / "stagger.toml"
    cfg.write_text('[reboot]\ndelay = "5s"\n\n[cycle]\nretry = "30s"\n')
    assert run_script("config", "check", "--config", str(cfg), backend=None).code == 0


# --- backend URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend",
    [
        "fleetlock+http://127.0.0.1:99999/",
        "fleetlock+http://[::1/",
        "etcd://127.0.0.1:99999",
        "etcd://127.0.0.1:²",
        "fleetlock+http://127.0.0.1:1/?retries=" + "9" * 5000,
    ],
)
def test_a_malformed_backend_url_is_one_sentence(backend: str) -> None:
    r = run_script("status", backend=backend)
    assert_one_sentence(r, 2)


def test_an_empty_backend_is_refused_not_the_default_store(tmp_path: Path) -> None:
    fallback = tmp_path / "fallback.db"
    env = stagger_env(STAGGER_BACKEND=f"sqlite:///{fallback}")
    r = run_script("status", "--backend", "", backend=None, env=env)
    assert_one_sentence(r, 2, "--backend", "empty")
    assert not fallback.exists()


@pytest.mark.parametrize("option", ["ca", "cert"])
def test_a_tls_file_that_cannot_be_used_is_named(tmp_path: Path, option: str) -> None:
    missing = tmp_path / "nowhere" / "file.pem"
    url = f"fleetlock+https://127.0.0.1:{free_port()}/?{option}={missing}"
    r = run_script("status", backend=url)
    assert_one_sentence(r, 2, str(missing))
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    not_pem.chmod(stat.S_IRUSR | stat.S_IWUSR)
    url = f"fleetlock+https://127.0.0.1:{free_port()}/?{option}={not_pem}"
    r = run_script("status", backend=url)
    assert_one_sentence(r, 2, str(not_pem))


def test_a_server_tls_file_that_is_not_pem_is_named(tmp_path: Path) -> None:
    import trustme

    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key, not_pem = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "x.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    not_pem.write_text("hello\n")
    serve = ("server", "--backend", f"sqlite:///{tmp_path}/s.db")
    serve += ("--listen", f"127.0.0.1:{free_port()}")
    r = run_script(*serve, "--tls-cert", str(not_pem), "--tls-key", str(key), backend=None)
    assert_one_sentence(r, 2, f"--tls-cert {not_pem}")
    r = run_script(
        *serve, "--tls-cert", str(cert), "--tls-key", str(key), "--tls-client-ca", str(not_pem),
        backend=None,
    )  # fmt: skip
    assert_one_sentence(r, 2, f"--tls-client-ca {not_pem}")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("history", "--limit", "²"), ("--limit", "stagger history --help")),
        (("history", "--limit", "9" * 5000), ("--limit",)),
        (("status", "--bogus"), ("--bogus", "stagger status --help")),
    ],
)
def test_a_bad_option_is_one_sentence_not_a_usage_screen(
    tmp_path: Path, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    r = run_script(*args, backend=f"sqlite:///{tmp_path}/s.db")
    assert_one_sentence(r, 2, *words)

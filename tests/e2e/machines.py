"""Real systemd machines for the e2e suite: a cached Debian 12 root, the package installed into
a layer above it, and systemd-nspawn containers booted from overlays of both.

- The root is built once with mmdebstrap (the packages in tests/e2e/packages, the mirror apt
  already uses on this host) and cached under CACHE, keyed by that list.
- A container's reboot is real: systemd in it reboots, systemd-nspawn exits with code 133, and
  the loop in `Machine._firmware` starts it again (the machine's "firmware").
- Each container runs from its own cgroup (with no systemd on the host they would otherwise
  all land in one), and is stopped, unmounted and its cgroups removed by `Machine.destroy`.
- Commands run inside with nsenter into the container's PID 1 (machinectl needs a systemd host).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("STAGGER_E2E_CACHE", "/var/cache/stagger-e2e"))
SUITE = "bookworm"
REBOOT_EXIT = 133  # systemd-nspawn's exit code when the container rebooted
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

T = TypeVar("T")


class Failed(Exception):
    """A scenario's check did not hold, or the machinery could not do its part; one sentence."""


APT_INSTALL = [
    "env",
    "DEBIAN_FRONTEND=noninteractive",
    "apt-get",
    "install",
    "-y",
    "-q",
    "-o",
    "DPkg::Options::=--force-unsafe-io",
]


def run(
    argv: Sequence[str], timeout: float = 60, check: bool = True, root: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """ARGV to its end (in a chroot of `root` when given); Failed when it fails and `check`."""
    argv = ["chroot", str(root), *argv] if root is not None else list(argv)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failed(f"{' '.join(argv)} did not finish within {timeout:.0f}s") from None
    if check and done.returncode != 0:
        raise Failed(
            f"{' '.join(argv)} exited {done.returncode}: {(done.stderr or done.stdout).strip()}"
        )
    return done


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.2) -> T:
    """Poll `probe` until it returns something other than None/False; bounded by `timeout`."""
    end = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > end:
            raise Failed(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


# --- the root -------------------------------------------------------------------------------


def packages() -> list[str]:
    lines = (HERE / "packages").read_text().splitlines()
    return [w for line in lines if (w := line.split("#")[0].strip())]


def apt_mirrors() -> tuple[str, str]:
    """(Debian URI, Debian security URI) from this host's apt sources: deb822 .sources files
    first, then sources.list. Never a host of our choosing."""
    main = security = ""
    texts = [p.read_text() for p in sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    for text in texts:
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for ln in stanza.splitlines():
                key, sep, value = ln.partition(":")
                if sep and not ln.startswith("#"):
                    fields[key.strip().lower()] = value.strip()
            uri, suites = fields.get("uris", "").split(), fields.get("suites", "").split()
            if not uri:
                continue
            if any(s.endswith("-security") for s in suites):
                security = security or uri[0]
            elif SUITE in suites or "stable" in suites:
                main = main or uri[0]
    lists = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list")]
    for path in lists:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
            if not m:
                continue
            uri, suite = m.groups()
            if suite.endswith("-security") or suite.endswith("/updates"):
                security = security or uri
            elif suite in (SUITE, "stable"):
                main = main or uri
    if not main:
        raise Failed(
            "no Debian mirror found in /etc/apt/sources.list.d/*.sources or "
            "/etc/apt/sources.list: the e2e root is built from the mirror apt already uses"
        )
    return main, security


def root_key() -> str:
    text = f"{SUITE}\n" + "\n".join(packages())
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def base_root(say: Callable[[str], None]) -> Path:
    """The cached minimal Debian 12 root (built with mmdebstrap when missing, ~70 s)."""
    root = CACHE / f"root-{root_key()}"
    if (root / "etc/debian_version").exists():
        return root
    main, security = apt_mirrors()
    sources = [f"deb {main} {SUITE} main", f"deb {main} {SUITE}-updates main"]
    if security:
        sources.append(f"deb {security} {SUITE}-security main")
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    say(f"building the Debian 12 root with mmdebstrap from {main} (cached in {root})")
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--include=" + ",".join(packages()),
        SUITE,
        str(tmp),
        *sources,
    ]
    start = time.monotonic()
    done = run(argv, timeout=900, check=False)
    if done.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise Failed(f"mmdebstrap failed (exit {done.returncode}):\n{tail}")
    tmp.rename(root)
    say(f"built the root in {time.monotonic() - start:.0f}s")
    return root


def overlay(lower: Sequence[Path], at: Path) -> Path:
    """An overlay mount at `at`/root over `lower` (first is topmost), writable in `at`/upper."""
    upper, work, merged = at / "upper", at / "work", at / "root"
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={':'.join(map(str, lower))},upperdir={upper},workdir={work}"
    done = run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)], check=False)
    if done.returncode != 0:
        raise Failed(
            f"cannot mount an overlay at {merged} ({done.stderr.strip()}): the e2e suite needs "
            "overlayfs on the file system of its work directory"
        )
    return merged


def unmount(path: Path) -> None:
    if os.path.ismount(path):
        run(["umount", "-l", str(path)], check=False)


def installed_layer(base: Path, deb: Path, say: Callable[[str], None]) -> Path:
    """The package installed into the root (dpkg -i in a chroot), as an overlay layer cached
    beside the root, keyed by the root and the .deb's content."""
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()[:12]
    layer = CACHE / f"installed-{base.name.removeprefix('root-')}-{digest}"
    if (layer / "done").exists():
        return layer / "upper"
    shutil.rmtree(layer, ignore_errors=True)
    for old in CACHE.glob(f"installed-{base.name.removeprefix('root-')}-*"):
        shutil.rmtree(old, ignore_errors=True)  # layers of older builds of the package
    say(f"installing {deb.name} into the root")
    merged = overlay([base], layer)
    try:
        shutil.copy(deb, merged / "tmp" / deb.name)
        # As an operator does (`apt-get install ./stagger_*.deb`). The package depends only on
        # what the root already has, so apt needs no network. No fsync: a throwaway test root.
        done = run([*APT_INSTALL, f"/tmp/{deb.name}"], root=merged, timeout=300, check=False)
        if done.returncode != 0:
            raise Failed(
                f"apt-get install ./{deb.name} in the Debian 12 root failed:\n"
                f"{done.stdout}{done.stderr}"
            )
        (merged / "tmp" / deb.name).unlink()
        # A persistent journal, so `journalctl --list-boots` sees every boot.
        (merged / "var/log/journal").mkdir(parents=True, exist_ok=True)
    finally:
        unmount(merged)
    (layer / "done").write_text(deb.name + "\n")
    return layer / "upper"


# --- cgroups --------------------------------------------------------------------------------


def cgroup_dirs(name: str) -> list[Path]:
    """Where a container's own cgroup goes: both hierarchies on a hybrid host (the named
    systemd one and cgroup2 at unified/), or the one cgroup2 tree."""
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return [base / name]
    dirs = [base / "systemd" / name]
    if (base / "unified").is_dir():
        dirs.append(base / "unified" / name)
    return dirs


def remove_cgroup(path: Path) -> None:
    """Kill what is left in it (and below), then remove it, deepest first."""
    if not path.is_dir():
        return
    for _ in range(50):
        pids = []
        for procs in path.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids += [int(p) for p in procs.read_text().split()]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for d in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            d.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


# --- a machine ------------------------------------------------------------------------------


class Machine:
    """One container: an overlay root, a firmware loop that boots it again after a reboot."""

    def __init__(self, name: str, layers: Sequence[Path], work: Path) -> None:
        self.name = name
        self.dir = work / name
        self.root = overlay(layers, self.dir)
        self.log = self.dir / "nspawn.log"
        self.cgroups = cgroup_dirs(f"stagger-e2e-{name}")
        self.proc: subprocess.Popen[bytes] | None = None
        self.boots = 0  # starts of the container
        self.reboots = 0  # nspawn exits with 133, each followed by a new start
        self.exit_code: int | None = None
        self.stopping = False
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    # The firmware: boot, and boot again while the container asks for a reboot.
    def _start_nspawn(self) -> subprocess.Popen[bytes]:
        for d in self.cgroups:
            d.mkdir(parents=True, exist_ok=True)
        join = " ".join(f"echo $$ > {d}/cgroup.procs &&" for d in self.cgroups)
        argv = [
            "sh",
            "-c",
            f'{join} exec "$@"',
            "sh",
            "systemd-nspawn",
            "-D",
            str(self.root),
            "-M",
            self.name,
            "-b",
            "--register=no",
            "--keep-unit",
            "--console=passive",
            "--link-journal=no",
        ]
        with self.log.open("ab") as out:
            return subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL)

    def _firmware(self) -> None:
        while True:
            with self.lock:
                if self.stopping:
                    return
                self.proc = self._start_nspawn()
                self.boots += 1
            code = self.proc.wait()
            with self.lock:
                if code == REBOOT_EXIT and not self.stopping:
                    self.reboots += 1
                    continue
                self.exit_code = code
                return

    def boot(self) -> None:
        self.thread = threading.Thread(target=self._firmware, name=self.name, daemon=True)
        self.thread.start()

    def leader(self) -> int | None:
        """The container's PID 1 as the host sees it (the child of systemd-nspawn)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return None
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def sh(
        self, command: str, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`sh -c COMMAND` inside the running container, as root, with a clean environment."""
        pid = self.leader()
        if pid is None:
            raise Failed(f"{self.name} is not running (cannot run: {command})")
        argv = [
            "nsenter",
            "-t",
            str(pid),
            "-a",
            "--",
            "/usr/bin/env",
            "-i",
            f"PATH={PATH}",
            "LANG=C.UTF-8",
            "/bin/sh",
            "-c",
            command,
        ]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failed(f"{self.name}: `{command}` did not finish within {timeout:.0f}s") from None
        if check and done.returncode != 0:
            out = (done.stderr + done.stdout).strip()
            raise Failed(f"{self.name}: `{command}` exited {done.returncode}: {out}")
        return done

    def system_state(self) -> str:
        if self.leader() is None:
            return ""
        done = self.sh("systemctl is-system-running", check=False, timeout=10)
        return done.stdout.strip()

    def wait_running(self, timeout: float = 60) -> None:
        """Booted: systemd says running (or degraded: some unit of the stock tree failed)."""
        if self.exit_code is not None:
            raise Failed(f"{self.name}: systemd-nspawn exited {self.exit_code}: {self.log_tail()}")

        def up() -> bool:
            if self.exit_code is not None:
                raise Failed(
                    f"{self.name}: systemd-nspawn exited {self.exit_code} while booting: "
                    f"{self.log_tail()}"
                )
            return self.system_state() in ("running", "degraded")

        wait_for(f"{self.name} to boot (systemctl is-system-running)", up, timeout)

    def boot_id(self) -> str:
        return self.sh("cat /proc/sys/kernel/random/boot_id").stdout.strip()

    def listed_boots(self) -> int:
        done = self.sh("journalctl --list-boots --no-pager -q", check=False)
        return len([ln for ln in done.stdout.splitlines() if ln.strip()])

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        """A file in the container's tree (through the overlay, from the host)."""
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no nspawn log)"
        return "\n".join(text.splitlines()[-lines:])

    def journal(self, unit: str = "stagger-agent.service", lines: int = 60) -> str:
        """The unit's journal lines over every boot, read from the host (works when down)."""
        journal_dir = self.root / "var/log/journal"
        if not journal_dir.is_dir():
            return f"(no persistent journal in {self.name})"
        argv = [
            "journalctl",
            "--directory",
            str(journal_dir),
            "--no-pager",
            "-o",
            "short-precise",
            "-u",
            unit,
            "-n",
            str(lines),
        ]
        done = run(argv, check=False)
        return (done.stdout + done.stderr).strip() or "(no journal lines)"

    def destroy(self) -> None:
        """Stop the container (clean shutdown, then SIGKILL), unmount, remove its cgroups."""
        with self.lock:
            self.stopping = True
            proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()  # systemd-nspawn: a clean shutdown of the container
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self.thread is not None:
            self.thread.join(5)
        for d in self.cgroups:
            remove_cgroup(d)
        unmount(self.root)

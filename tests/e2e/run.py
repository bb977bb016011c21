"""`make e2e`: stagger on real systemd machines, rebooted for real.

The package (dist/stagger_*.deb) is checked with lintian, installed into a cached Debian 12
root, and every scenario boots systemd-nspawn containers from it. A `stagger server` runs on
the host on 127.0.0.1 (the containers share the host's network); each container runs the
packaged stagger-agent.service with the logind rebooter and the file detector. What each
scenario proves is in docs/install.md. One summary line per scenario; a failure prints the
agent's journal from inside each container. Containers, mounts and cgroups are removed even
when a scenario fails. Exit 0 only when every scenario passed.

Usage: tests/e2e/run.py [--deb FILE] [--only A,B,...] [--keep]   (as root)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machines import (
    Failed,
    Machine,
    base_root,
    installed_layer,
    overlay,
    run,
    unmount,
    wait_for,
)

TOP = Path(__file__).resolve().parents[2]
HOST_STAGGER = Path(sys.executable).with_name("stagger")
GROUP = "e2e"
STEP = 60.0  # upper bound of one wait (a reboot and a health check take a few seconds)

HEALTH = """#!/bin/sh
# e2e health check: records its verdict with the boot it ran in; fails while /etc/e2e-broken
# exists (scenario B's bad update).
boot=$(cat /proc/sys/kernel/random/boot_id)
if [ -e /etc/e2e-broken ]; then
    echo "$(date +%s.%N) $boot fail" >> /var/lib/e2e-health.log
    exit 1
fi
echo "$(date +%s.%N) $boot pass" >> /var/lib/e2e-health.log
"""

HOLD_DRAIN = "while [ -e /etc/e2e-hold-drain ]; do sleep 0.1; done"


def agent_config(node: str, backend: str) -> str:
    return f"""# written by tests/e2e/run.py
[agent]
id = "{node}"
group = "{GROUP}"
backend = "{backend}"
detectors = ["file"]
rebooter = "logind"

[detectors.file]
interval = "200ms"

[hooks]
pre_reboot = [["sh", "-c", "{HOLD_DRAIN}"]]
health = [["/usr/local/bin/e2e-health"]]
health_interval = "500ms"
health_timeout = "3s"

[cycle]
retry = "1s"
heartbeat = "2s"
backoff = "1s"
health_recheck = "2s"
poll = "1s"
"""


def say(text: str) -> None:
    print(f"e2e: {text}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the host's side: a stagger server (and etcd) --------------------------------------------


@dataclass
class Server:
    work: Path
    backend: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        argv = [
            str(HOST_STAGGER),
            "server",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--backend",
            self.backend,
            "--group",
            f"{GROUP}=1",
        ]
        with (self.work / "server.log").open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL)

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise Failed(f"stagger server exited {self.proc.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False

        wait_for("the stagger server on the host", ready, 30)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([str(HOST_STAGGER), *args, "--backend", self.url], check=check)

    def history(self) -> list[dict[str, str]]:
        doc = json.loads(self.cli("history", "--group", GROUP, "--limit", "1000", "--json").stdout)
        return list(doc["events"])

    def holders(self) -> list[str]:
        doc = json.loads(self.cli("status", "--group", GROUP, "--json").stdout)
        return [h["id"] for g in doc["groups"] for h in g["holders"]]

    def log_tail(self, lines: int = 10) -> str:
        text = (self.work / "server.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def etcd(work: Path) -> Iterator[str]:
    """A one-member etcd on loopback ports; yields its backend URL."""
    client, peer, metrics = free_port(), free_port(), free_port()
    data = work / "etcd"
    argv = [
        "etcd",
        "--name",
        "e2e",
        "--data-dir",
        str(data),
        "--logger=zap",
        "--log-level=error",
        "--listen-client-urls",
        f"http://127.0.0.1:{client}",
        "--advertise-client-urls",
        f"http://127.0.0.1:{client}",
        "--listen-peer-urls",
        f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls",
        f"http://127.0.0.1:{peer}",
        "--initial-cluster",
        f"e2e=http://127.0.0.1:{peer}",
        "--listen-metrics-urls",
        f"http://127.0.0.1:{metrics}",
        "--heartbeat-interval=10",
        "--election-timeout=100",
    ]
    if shutil.which("etcd") is None:
        raise Failed("etcd is not installed: `make system-deps` installs etcd-server")
    with (work / "etcd.log").open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    try:

        def healthy() -> bool:
            if proc.poll() is not None:
                raise Failed(f"etcd exited {proc.returncode}; see {work / 'etcd.log'}")
            done = run(
                ["etcdctl", f"--endpoints=http://127.0.0.1:{client}", "endpoint", "health"],
                check=False,
                timeout=10,
            )
            return done.returncode == 0

        wait_for("etcd on the host", healthy, 30)
        yield f"etcd://127.0.0.1:{client}"
    finally:
        proc.kill()
        proc.wait()


# --- a node: a machine running the packaged agent --------------------------------------------


class Node:
    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.name = machine.name
        self.first_boot = ""

    def configure(self, backend: str) -> None:
        self.m.write("/etc/stagger/config.d/60-e2e.toml", agent_config(self.name, backend))
        self.m.write("/usr/local/bin/e2e-health", HEALTH, 0o755)

    def start(self) -> None:
        self.m.boot()

    def up(self) -> None:
        self.m.wait_running()
        self.first_boot = self.m.boot_id()

    def enable_agent(self) -> None:
        self.m.sh("systemctl enable --now stagger-agent.service")
        wait_for(f"{self.name}'s agent to be ready", lambda: self.cycle() == "idle", STEP)

    def state(self) -> dict[str, object]:
        try:
            doc = json.loads((self.m.root / "var/lib/stagger/agent.json").read_text())
        except (OSError, ValueError):
            return {}
        return dict(doc.get("state", {}))

    def cycle(self) -> str:
        return str(self.state().get("cycle", ""))

    def need_reboot(self) -> None:
        self.m.sh("touch /run/reboot-required")

    def health_log(self) -> list[tuple[float, str, str]]:
        try:
            lines = (self.m.root / "var/lib/e2e-health.log").read_text().splitlines()
        except OSError:
            return []
        return [(float(t), boot, verdict) for t, boot, verdict in (ln.split() for ln in lines)]

    def agent_restarts(self) -> int:
        out = self.m.sh("systemctl show -p NRestarts --value stagger-agent.service").stdout
        return int(out.strip() or 0)

    def wait_rebooted_and(self, cycle: str, timeout: float = STEP) -> None:
        """Rebooted once, back up, and the agent at rest in `cycle`."""

        def done() -> bool:
            return self.m.reboots >= 1 and self.m.leader() is not None and self.cycle() == cycle

        wait_for(f"{self.name} to reboot and its agent to reach {cycle}", done, timeout)
        self.m.wait_running()


# --- checks on the server's history --------------------------------------------------------------


def when(event: dict[str, str]) -> float:
    return datetime.fromisoformat(event["time"]).timestamp()


def max_concurrent(events: list[dict[str, str]]) -> int:
    held: set[str] = set()
    most = 0
    for e in sorted(events, key=when):
        if e["action"] == "acquired":
            held.add(e["id"])
        elif e["action"] in ("released", "expired", "forgotten"):
            held.discard(e["id"])
        most = max(most, len(held))
    return most


def count(events: list[dict[str, str]], action: str, node: str) -> int:
    return sum(1 for e in events if e["action"] == action and e["id"] == node)


def check(ok: bool, sentence: str) -> None:
    if not ok:
        raise Failed(sentence)


# --- scenarios -------------------------------------------------------------------------------


@dataclass
class Env:
    work: Path
    layers: list[Path]
    machines: list[Machine] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)
    mounts: list[Path] = field(default_factory=list)

    def nodes(self, count_: int, backend: str) -> list[Node]:
        nodes = []
        for i in range(1, count_ + 1):
            m = Machine(f"node-{i}", self.layers, self.work)
            self.machines.append(m)
            node = Node(m)
            node.configure(backend)
            nodes.append(node)
        return nodes

    def server(self, backend: str) -> Server:
        s = Server(self.work, backend)
        self.servers.append(s)
        s.start()
        return s

    def boot(self, nodes: list[Node]) -> None:
        for n in nodes:
            n.start()
        for n in nodes:
            n.up()

    def teardown(self) -> None:
        for m in self.machines:
            m.destroy()
        for s in self.servers:
            s.stop()
        for path in self.mounts:
            unmount(path)


def scenario_a(env: Env, backend: str) -> str:
    """A real rollout: three nodes, max 1, a need in all three at once."""
    server = env.server(backend)
    nodes = env.nodes(3, f"fleetlock+{server.url}")
    env.boot(nodes)
    for n in nodes:
        enabled = n.m.sh("systemctl is-enabled stagger-agent.service", check=False).stdout.strip()
        active = n.m.sh("systemctl is-active stagger-agent.service", check=False).stdout.strip()
        check(
            (enabled, active) == ("disabled", "inactive"),
            f"{n.name}: after the first boot stagger-agent.service is {enabled}/{active}; the "
            "package must leave it disabled and stopped (the preset file)",
        )
        n.enable_agent()
    for n in nodes:
        n.need_reboot()
    for n in nodes:
        n.wait_rebooted_and("idle", timeout=3 * STEP)
    events = server.history()
    for n in nodes:
        check(n.m.reboots == 1, f"{n.name} rebooted {n.m.reboots} times, not once")
        boots = n.m.listed_boots()
        check(boots == 2, f"{n.name}: journalctl --list-boots lists {boots} boots, not 2")
        check(n.m.boot_id() != n.first_boot, f"{n.name}: the boot id did not change")
        check(count(events, "acquired", n.name) == 1, f"{n.name} did not acquire exactly once")
        check(count(events, "released", n.name) == 1, f"{n.name} did not release exactly once")
        release = max(when(e) for e in events if e["action"] == "released" and e["id"] == n.name)
        passed = [t for t, boot, v in n.health_log() if v == "pass" and boot != n.first_boot]
        check(
            bool(passed) and min(passed) <= release,
            f"{n.name} released its slot without a passed health check in its new boot",
        )
    check(max_concurrent(events) == 1, "the history shows two holders at once")
    check(server.holders() == [], f"stagger status ends with holders: {server.holders()}")
    return "3 nodes rebooted once each, one holder at a time, released after health passed"


def scenario_b(env: Env) -> str:
    """A bad update halts the rollout: node-2's health check fails after its reboot."""
    server = env.server(f"sqlite:///{env.work}/b.db")
    nodes = env.nodes(3, f"fleetlock+{server.url}")
    n1, n2, n3 = nodes
    n2.m.write("/etc/e2e-broken", "")
    env.boot(nodes)
    for n in nodes:
        n.enable_agent()
    n1.need_reboot()
    n1.wait_rebooted_and("idle")
    n2.need_reboot()
    n2.wait_rebooted_and("halted")
    check(server.holders() == ["node-2"], f"node-2 does not keep its slot: {server.holders()}")
    n3.need_reboot()
    wait_for("node-3 to ask for the slot", lambda: n3.cycle() == "waiting", STEP)
    time.sleep(5)  # five of node-3's retries: it must still be waiting
    check(n3.m.reboots == 0, "node-3 rebooted while node-2 held the slot after a failed check")
    check(n3.cycle() == "waiting", f"node-3 is {n3.cycle()}, not waiting for the slot")
    explained = n2.m.sh("stagger explain", check=False)
    check(
        "health checks failed" in explained.stdout,
        f"`stagger explain` on node-2 does not say why it halted:\n{explained.stdout}",
    )
    server.cli("unlock", "--group", GROUP, "--id", "node-2")
    n3.wait_rebooted_and("idle")
    events = server.history()
    check(max_concurrent(events) == 1, "the history shows two holders at once")
    check(n2.m.reboots == 1, f"node-2 rebooted {n2.m.reboots} times, not once")
    check(count(events, "acquired", "node-3") == 1, "node-3 did not acquire exactly once")
    return "node-2 halted holding its slot, node-3 waited, went on after `stagger unlock`"


def scenario_c(env: Env) -> str:
    """The opt-out flag (the unit does not start, doctor says so) and `stagger pause`."""
    server = env.server(f"sqlite:///{env.work}/c.db")
    nodes = env.nodes(3, f"fleetlock+{server.url}")
    n1, n2, n3 = nodes
    n1.m.write("/etc/stagger/disabled", "")
    env.boot(nodes)
    n1.m.sh("systemctl enable --now stagger-agent.service")
    for n in (n2, n3):
        n.enable_agent()
    active = n1.m.sh("systemctl is-active stagger-agent.service", check=False).stdout.strip()
    cond = n1.m.sh("systemctl show -p ConditionResult --value stagger-agent.service").stdout
    check(
        active == "inactive" and cond.strip() == "no",
        f"node-1 has /etc/stagger/disabled, yet the agent is {active} (condition {cond.strip()})",
    )
    doctor = n1.m.sh("stagger doctor", check=False)
    check(
        "STAGGER WILL NOT REBOOT" in doctor.stdout and "/etc/stagger/disabled" in doctor.stdout,
        f"`stagger doctor` on node-1 does not say stagger will not reboot it:\n{doctor.stdout}",
    )
    updaters = "md5sum /etc/apt/apt.conf.d/* && systemctl is-enabled apt-daily-upgrade.timer"
    before = n3.m.sh(updaters, check=False).stdout
    n1.need_reboot()
    n2.need_reboot()
    n2.wait_rebooted_and("idle")
    server.cli("pause", "--group", GROUP, "--reason", "e2e: stop the rollout")
    n3.need_reboot()
    wait_for("node-3 to wait for the pause", lambda: n3.cycle() == "waiting", STEP)
    time.sleep(4)
    check(n3.m.reboots == 0, "node-3 rebooted while the group was paused")
    reason = str(n3.state().get("reason", ""))
    check("paused" in reason, f"node-3 waits, but not for the pause: {reason}")
    check(n1.m.reboots == 0, "node-1 (disabled) rebooted")
    check(n3.m.sh(updaters, check=False).stdout == before, "the pause touched an updater")
    server.cli("resume", "--group", GROUP)
    n3.wait_rebooted_and("idle")
    check(n1.m.reboots == 0, "node-1 (disabled) rebooted")
    return "disabled node never started its agent or rebooted; pause held node-3 until resume"


def scenario_d(env: Env) -> str:
    """SIGKILL of the agent while DRAINING: systemd restarts it, it carries on."""
    server = env.server(f"sqlite:///{env.work}/d.db")
    (n1,) = env.nodes(1, f"fleetlock+{server.url}")
    n1.m.write("/etc/e2e-hold-drain", "")
    env.boot([n1])
    n1.enable_agent()
    n1.need_reboot()
    wait_for("node-1 to drain", lambda: n1.cycle() == "draining", STEP)
    pid = n1.m.sh("systemctl show -p MainPID --value stagger-agent.service").stdout.strip()
    check(pid not in ("", "0"), "the agent has no main PID while draining")
    n1.m.sh(f"kill -KILL {pid}")
    wait_for("systemd to restart the agent", lambda: n1.agent_restarts() >= 1, STEP)
    wait_for(
        "the restarted agent to be active",
        lambda: (
            n1.m.sh("systemctl is-active stagger-agent.service", check=False).stdout.strip()
            == "active"
        ),
        STEP,
    )
    check(n1.m.reboots == 0, "node-1 rebooted before its drain finished")
    (n1.m.root / "etc/e2e-hold-drain").unlink()
    n1.wait_rebooted_and("idle")
    events = server.history()
    check(n1.m.reboots == 1, f"node-1 rebooted {n1.m.reboots} times, not once")
    acquired, released = count(events, "acquired", "node-1"), count(events, "released", "node-1")
    check(
        (acquired, released) == (1, 1),
        f"history has {acquired} acquire(s) and {released} release(s) for node-1, not 1 and 1",
    )
    return "killed while draining, restarted by systemd: 1 reboot, 1 acquire, 1 release"


def scenario_e(env: Env) -> str:
    """`stagger doctor` on a stock tree with unattended-upgrades set to reboot."""
    (n1,) = env.nodes(1, "sqlite:///var/lib/stagger/stagger.db")
    local = "/etc/apt/apt.conf.d/52unattended-upgrades-local"
    n1.m.write(local, 'Unattended-Upgrade::Automatic-Reboot "true";\n')
    env.boot([n1])
    first = n1.m.sh("stagger doctor", check=False)
    check(
        first.returncode == 1, f"`stagger doctor` exited {first.returncode}, not 1:\n{first.stdout}"
    )
    out = first.stdout
    check(
        "unattended-upgrades" in out and 'Automatic-Reboot "false"' in out and local in out,
        f"`stagger doctor` does not name unattended-upgrades and its fix in {local}:\n{out}",
    )
    n1.m.sh(f'sed -i \'s/"true"/"false"/\' {local}')
    second = n1.m.sh("stagger doctor", check=False)
    check(
        second.returncode == 0,
        f"after the fix `stagger doctor` exited {second.returncode}, not 0:\n{second.stdout}",
    )
    return "named unattended-upgrades and its fix; exit 0 after the fix"


def scenario_p(env: Env, deb: Path) -> str:
    """The package's life in a chroot of the root it was installed into (with apt-get): the
    preset, the conffile, remove, purge (what it removes and what it keeps, as
    docs/install.md says)."""
    root = overlay(env.layers, env.work / "pkg")
    env.mounts.append(root)

    def inside(command: str) -> subprocess.CompletedProcess[str]:
        return run(["/bin/sh", "-c", command], root=root, timeout=300)

    def exists(path: str) -> bool:
        return (root / path.lstrip("/")).exists()

    inside("stagger --version && stagger config check && getent passwd stagger")
    inside("systemctl preset stagger-agent.service stagger-server.service")
    enabled = inside("systemctl is-enabled stagger-agent.service stagger-server.service || :")
    check(
        enabled.stdout.split() == ["disabled", "disabled"],
        f"after `systemctl preset` the units are {enabled.stdout.split()}, not disabled",
    )
    # dpkg keeps an edited conffile on upgrade (and asks before replacing it when the package
    # changes it): check that the example is registered as one, with the content shipped.
    example = root / "etc/stagger/config.d/50-agent.toml"
    conffiles = inside("dpkg-query -W -f='${Conffiles}' stagger").stdout.split()
    check(
        conffiles[:2]
        == [f"/{example.relative_to(root)}", hashlib.md5(example.read_bytes()).hexdigest()],
        f"the example is not a conffile as shipped: dpkg lists {conffiles}",
    )
    example.write_text(example.read_text() + "# an operator's edit\n")
    inside("echo '[agent]' > /etc/stagger/config.d/60-site.toml && touch /etc/stagger/disabled")
    inside("echo db > /var/lib/stagger/stagger.db && echo {} > /var/lib/stagger/agent.json")
    inside("dpkg --force-unsafe-io --remove stagger")
    check(
        not exists("/usr/bin/stagger") and not exists("/usr/lib/stagger"),
        "dpkg --remove left the program behind",
    )
    check(
        example.exists() and exists("/var/lib/stagger/agent.json"),
        "dpkg --remove removed the configuration or the state",
    )
    inside("dpkg --force-unsafe-io --purge stagger")
    check(not example.exists(), "dpkg --purge left the shipped example")
    check(not exists("/var/lib/stagger/agent.json"), "dpkg --purge left the agent's state")
    kept = [
        "/etc/stagger/config.d/60-site.toml",
        "/etc/stagger/disabled",
        "/var/lib/stagger/stagger.db",
    ]
    lost = [p for p in kept if not exists(p)]
    check(not lost, f"dpkg --purge removed what an operator may need: {lost}")
    return "units stay disabled, the example is a conffile, remove and purge as documented"


class Lintian:
    """lintian on the package, run beside the scenarios (it takes about a minute, mostly
    reading the venv); `result` waits for it."""

    def __init__(self, deb: Path, work: Path) -> None:
        self.out = work / "lintian.txt"
        self.started = time.monotonic()
        argv = ["lintian", "--fail-on", "error", "--tag-display-limit", "0", str(deb)]
        with self.out.open("wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)

    def result(self) -> str:
        try:
            code = self.proc.wait(900)
        except subprocess.TimeoutExpired:
            raise Failed("lintian did not finish within 15 minutes") from None
        lines = self.out.read_text(errors="replace").splitlines()
        tags = [ln for ln in lines if ln[:2] in ("E:", "W:")]
        if code != 0:
            raise Failed(f"lintian exited {code}:\n" + "\n".join(tags or lines[-10:]))
        return f"no errors ({len(tags)} warning(s): {'; '.join(tags) or 'none'})"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --- the run ---------------------------------------------------------------------------------


def newest_deb() -> Path:
    debs = sorted((TOP / "dist").glob("stagger_*.deb"), key=lambda p: p.stat().st_mtime)
    if not debs:
        raise Failed("no dist/stagger_*.deb: run `make deb` first")
    return debs[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deb", type=Path)
    parser.add_argument("--only", default="", help="comma-separated scenario letters")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("e2e: must run as root (systemd-nspawn, overlay mounts, cgroups)", file=sys.stderr)
        return 2
    for tool in ("systemd-nspawn", "mmdebstrap", "nsenter", "lintian"):
        if shutil.which(tool) is None:
            print(f"e2e: {tool} is missing: run `make e2e` (it installs it)", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    only = {s.strip().upper() for s in args.only.split(",") if s.strip()}
    try:
        deb = (args.deb or newest_deb()).resolve()
    except Failed as exc:
        print(f"e2e: {exc}", file=sys.stderr)
        return 1
    lint_dir = Path(tempfile.mkdtemp(prefix="stagger-e2e-lintian-", dir="/var/tmp"))
    lint = Lintian(deb, lint_dir) if not only or "L" in only else None
    try:
        base = base_root(say)
        layer = installed_layer(base, deb, say)
        return run_scenarios(deb, [layer, base], only, lint, args.keep)
    except Failed as exc:
        print(f"e2e: {exc}", file=sys.stderr)
        return 1
    finally:
        if lint is not None:
            lint.stop()
        shutil.rmtree(lint_dir, ignore_errors=True)


def run_scenarios(
    deb: Path, layers: list[Path], only: set[str], lint: Lintian | None, keep: bool
) -> int:
    scenarios: list[tuple[str, str, Callable[[Env], str]]] = [
        ("P", "install, preset, remove, purge", lambda env: scenario_p(env, deb)),
        ("A", "real rollout (SQLite)", lambda env: scenario_a(env, f"sqlite:///{env.work}/a.db")),
        ("A2", "real rollout (etcd)", lambda env: etcd_rollout(env)),
        ("B", "bad update halts", scenario_b),
        ("C", "disabled flag and pause", scenario_c),
        ("D", "agent killed while draining", scenario_d),
        ("E", "doctor on unattended-upgrades", scenario_e),
    ]
    if lint is not None:  # last: it ran beside the others, timed from its own start
        scenarios.append(("L", "lintian on the package", lambda env: lint.result()))
    results: list[tuple[str, str, bool, float, str]] = []
    for letter, title, body in scenarios:
        if only and letter not in only:
            continue
        work = Path(tempfile.mkdtemp(prefix=f"stagger-e2e-{letter}-", dir="/var/tmp"))
        env = Env(work, layers)
        start = lint.started if lint is not None and letter == "L" else time.monotonic()
        ok, note = True, ""
        try:
            note = body(env)
        except Failed as exc:
            ok, note = False, str(exc)
            print(f"\n--- scenario {letter} failed: {exc}", file=sys.stderr)
            for m in env.machines:
                print(f"--- {m.name}: stagger-agent.service journal", file=sys.stderr)
                print(m.journal(), file=sys.stderr)
            for s in env.servers:
                print(f"--- stagger server log\n{s.log_tail(30)}", file=sys.stderr)
        finally:
            env.teardown()
            if keep or not ok:
                say(f"scenario {letter}: work directory kept in {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
        elapsed = time.monotonic() - start
        results.append((letter, title, ok, elapsed, note))
        print(
            f"e2e {letter:<2} {title:<32} {'PASS' if ok else 'FAIL'} {elapsed:6.1f}s  "
            f"{note.splitlines()[0] if note else ''}",
            flush=True,
        )
    print()
    for letter, title, ok, elapsed, _note in results:
        print(f"e2e {letter:<2} {title:<32} {'PASS' if ok else 'FAIL'} {elapsed:6.1f}s")
    return 0 if results and all(ok for *_, ok, _, _ in results) else 1


def etcd_rollout(env: Env) -> str:
    with etcd(env.work) as url:
        return scenario_a(env, url)


if __name__ == "__main__":
    sys.exit(main())

"""Prometheus metrics, in a registry per app (tests run several servers in one process).
Label values are bounded: endpoints are our route names, kinds are ErrorKind or "ok", and
groups are the groups in the store."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from stagger.backends.protocol import Snapshot
from stagger.core.blockers import Verdict

CONTENT_TYPE = CONTENT_TYPE_LATEST
OK = "ok"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "stagger_server_requests",
            "Requests answered, by endpoint and outcome kind (ok or an error kind).",
            ["endpoint", "kind"],
            registry=r,
        )
        self.latency = Histogram(
            "stagger_server_request_duration_seconds",
            "Time to answer a request, by endpoint.",
            ["endpoint"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.backend_errors = Counter(
            "stagger_server_backend_errors",
            "Backend calls that failed (store unreachable or unreadable), by operation.",
            ["operation"],
            registry=r,
        )
        self.holders = Gauge("stagger_group_holders", "Live holds.", ["group"], registry=r)
        self.max = Gauge("stagger_group_max", "Slots (max holds at once).", ["group"], registry=r)
        self.paused = Gauge(
            "stagger_group_paused", "1 when a pause is in force.", ["group"], registry=r
        )
        self.stale = Gauge(
            "stagger_group_stale_holds",
            "Holds whose holder has not been seen for the group's stale_after.",
            ["group"],
            registry=r,
        )
        self.fleet_paused = Gauge(
            "stagger_fleet_paused", "1 when the fleet-wide pause is in force.", registry=r
        )
        self.nodes_paused = Gauge(
            "stagger_nodes_paused",
            "Nodes whose own pause (stagger pause --node) is in force.",
            registry=r,
        )
        # Notifications, by [[notify]] entry name (from the config: bounded) and event.
        self.notifications = Counter(
            "stagger_notify_sent",
            "Notifications delivered, by target name and event.",
            ["target", "event"],
            registry=r,
        )
        self.notify_failures = Counter(
            "stagger_notify_failures",
            "Notification tries that failed (each retry counts), by target name.",
            ["target"],
            registry=r,
        )
        self.notify_drops = Counter(
            "stagger_notify_dropped",
            "Notifications never delivered: given_up after every retry, or queue_full.",
            ["target", "reason"],
            registry=r,
        )
        self.notify_leader = Gauge(
            "stagger_notify_leader",
            "1 when this server is the one of its store's servers that sends notifications.",
            registry=r,
        )
        self.nodes = Gauge(
            "stagger_nodes",
            "Nodes known to the server, by group and state (silent: no recent report).",
            ["group", "state"],
            registry=r,
        )
        self.nodes_watched = Gauge(
            "stagger_nodes_watched",
            "1 when the last scrape's stagger_nodes came from the counts the server keeps from "
            "a watch of the store (etcd); 0 when they were read from the store.",
            registry=r,
        )
        # Blockers, by [[blocker]] name (from the config: bounded).
        self.blocker_blocking = Gauge(
            "stagger_blocker_blocking",
            "1 while the blocker holds reboots back (firing alerts, a failing URL, or no answer).",
            ["blocker"],
            registry=r,
        )
        self.blocker_up = Gauge(
            "stagger_blocker_up",
            "1 when the blocker's last check got an answer (0: unreachable, or not checked yet).",
            ["blocker"],
            registry=r,
        )
        self.blocker_checked = Gauge(
            "stagger_blocker_last_check_timestamp_seconds",
            "When the blocker was last checked (Unix time; 0: not yet).",
            ["blocker"],
            registry=r,
        )
        # Label children are looked up once, not on every request.
        self._req: dict[tuple[str, str], Counter] = {}
        self._lat: dict[str, Histogram] = {}

    def observe(self, endpoint: str, kind: str, seconds: float) -> None:
        key = (endpoint, kind)
        counter = self._req.get(key)
        if counter is None:
            counter = self._req[key] = self.requests.labels(endpoint, kind)
        counter.inc()
        hist = self._lat.get(endpoint)
        if hist is None:
            hist = self._lat[endpoint] = self.latency.labels(endpoint)
        hist.observe(seconds)

    def backend_error(self, operation: str) -> None:
        self.backend_errors.labels(operation).inc()

    def set_groups(self, snap: Snapshot) -> None:
        for gauge in (self.holders, self.max, self.paused, self.stale):
            gauge.clear()
        for g in snap.groups:
            self.holders.labels(g.group).set(len(g.holds))
            self.max.labels(g.group).set(g.semaphore.slots(g.now))  # a percentage, in slots
            self.paused.labels(g.group).set(1 if g.pause is not None else 0)
            self.stale.labels(g.group).set(len(g.stale))
        self.fleet_paused.set(1 if snap.fleet_pause is not None else 0)
        self.nodes_paused.set(len(snap.node_pauses))

    def notify_sent(self, target: str, event: str) -> None:
        self.notifications.labels(target, event).inc()

    def notify_failed(self, target: str) -> None:
        self.notify_failures.labels(target).inc()

    def notify_dropped(self, target: str, reason: str) -> None:
        self.notify_drops.labels(target, reason).inc()

    def set_notify_leader(self, leader: bool) -> None:
        self.notify_leader.set(1 if leader else 0)

    def set_nodes(self, counts: dict[tuple[str, str], int]) -> None:
        self.nodes.clear()
        for (group, state), n in counts.items():
            self.nodes.labels(group, state).set(n)

    def set_counts_watched(self, watched: bool) -> None:
        self.nodes_watched.set(1 if watched else 0)

    def set_blocker(self, name: str, verdict: Verdict) -> None:
        self.blocker_blocking.labels(name).set(1 if verdict.blocking else 0)
        self.blocker_up.labels(name).set(1 if verdict.reachable else 0)
        checked = verdict.checked_at.timestamp() if verdict.checked_at is not None else 0
        self.blocker_checked.labels(name).set(checked)

    def render(self) -> bytes:
        return generate_latest(self.registry)

"""`stagger windows`: the next openings of the schedule, in each window's zone and in UTC,
with the DST shifts and blackouts that changed them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import typer

from stagger.backends.protocol import utcnow
from stagger.cli.config import ConfigFileOption, ConfigRootOption, load
from stagger.cli.output import JsonOption, console, emit, reported_errors
from stagger.core.durations import format_duration
from stagger.core.schedule import HORIZON, Opening
from stagger.core.windows import parse_instant

MAX_COUNT = 1000


def _local(t: datetime | None, zone: str) -> str | None:
    return None if t is None else t.astimezone(ZoneInfo(zone)).isoformat()


def _opening_doc(o: Opening, zone: str) -> dict[str, Any]:
    return {
        "start": _local(o.start, zone),
        "end": _local(o.end, zone),
        "start_utc": _local(o.start, "UTC"),
        "end_utc": _local(o.end, "UTC"),
        "time_zone": zone,
        "length_seconds": None if o.end is None else (o.end - o.start).total_seconds(),
        "window": o.window.describe() if o.window is not None else None,
        "notes": list(o.notes),
    }


def _line(o: Opening, zone: str) -> str:
    tz, utc = ZoneInfo(zone), ZoneInfo("UTC")
    start, start_utc = o.start.astimezone(tz), o.start.astimezone(utc)
    if o.end is None:
        span = f"{start:%a %Y-%m-%d %H:%M} {zone} → (open beyond {HORIZON.days} days)"
        span_utc = f"{start_utc:%Y-%m-%d %H:%M} UTC → …"
    else:
        end, end_utc = o.end.astimezone(tz), o.end.astimezone(utc)
        span = f"{start:%a %Y-%m-%d %H:%M} → {end:%a %H:%M} {zone}"
        span_utc = f"{start_utc:%Y-%m-%d %H:%M} → {end_utc:%H:%M} UTC"
        span += f" ({format_duration(o.end - o.start)})"
    what = o.window.describe() if o.window is not None else "no windows: always open"
    return f"{span}   [{span_utc}]   {what}"


def windows(
    config: Path | None = ConfigFileOption,
    root: Path | None = ConfigRootOption,
    start: str | None = typer.Option(
        None,
        "--from",
        metavar="T",
        help="Start from T, an RFC 3339 time with offset (default: now).",
        show_default=False,
    ),
    count: int = typer.Option(
        5, "--count", "-n", min=1, max=MAX_COUNT, metavar="N", help="How many openings."
    ),
    json: bool = JsonOption,
) -> None:
    """List the next N openings (windows minus blackouts), each in its window's zone and in UTC.
    With --json: a list of objects with RFC 3339 `start` and `end` (end is null when an opening
    lasts beyond the one-year search horizon)."""
    loaded = load(config, root, json)
    with reported_errors(json):
        now = parse_instant(start, what="--from") if start else utcnow()
        schedule = loaded.schedule()
        openings = schedule.openings(now, count)
        why = schedule.why(now)

    def zone_of(o: Opening) -> str:
        return o.window.time_zone if o.window is not None else loaded.host_zone

    doc = [_opening_doc(o, zone_of(o)) for o in openings]

    def human() -> None:
        out = console()
        out.print(f"at {now.isoformat()}: {why}", soft_wrap=True)
        if schedule.always_open:
            out.print("no windows are configured: a reboot may start at any time outside blackouts")
        if not openings:
            out.print(f"no opening within the next {HORIZON.days} days")
        for o in openings:
            out.print(_line(o, zone_of(o)), soft_wrap=True)
            for note in o.notes:
                out.print(f"    note: {note}", soft_wrap=True)

    emit(doc, json, human)


def register(app: typer.Typer) -> None:
    app.command("windows")(windows)

"""How long a drain, a reboot or a boot takes, as operators write it: a duration ("3m"), a
uniform range ("uniform:2m-4m") or a log-normal ("lognormal:3m,0.3": median 3m, sigma 0.3 of
the underlying normal, so most samples fall within a factor e^0.3 ≈ 1.35 of the median and
a few run long, as real reboots do). Samples come from the caller's seeded random.Random."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import timedelta

from stagger.core.durations import format_duration, parse_duration
from stagger.core.errors import InvalidInput

FORMS = "a duration like '3m', 'uniform:2m-4m' or 'lognormal:3m,0.3' (median, sigma)"


@dataclass(frozen=True)
class Distribution:
    """A duration distribution, in seconds. `kind` is fixed, uniform or lognormal."""

    kind: str
    a: float  # fixed: the value; uniform: low; lognormal: the median
    b: float = 0.0  # uniform: high; lognormal: sigma
    text: str = ""

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        return rng.lognormvariate(math.log(self.a), self.b)

    @property
    def mean(self) -> float:
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        return self.a * math.exp(self.b * self.b / 2)

    def __str__(self) -> str:
        return self.text or format_duration_seconds(self.a)


def format_duration_seconds(seconds: float) -> str:
    return format_duration(timedelta(seconds=seconds))


def _seconds(text: str, what: str) -> float:
    try:
        return parse_duration(text, what=what).total_seconds()
    except InvalidInput:
        raise InvalidInput(f"{what} {text!r} is not allowed: write {FORMS}") from None


def parse_distribution(text: str, *, what: str = "duration") -> Distribution:
    """Parse one of FORMS; InvalidInput names `what` (for example 'drain time') on error."""
    raw = text.strip()
    kind, sep, rest = raw.partition(":")
    kind = kind.strip().lower()
    if not sep:
        return Distribution("fixed", _seconds(raw, what), text=raw)
    if kind == "uniform":
        low, dash, high = rest.partition("-")
        if not dash:
            raise InvalidInput(f"{what} {text!r} has no range: write it like 'uniform:2m-4m'")
        lo, hi = _seconds(low, what), _seconds(high, what)
        if hi < lo:
            raise InvalidInput(
                f"{what} {text!r} ends below its start: write the shorter time first, "
                "like 'uniform:2m-4m'"
            )
        return Distribution("uniform", lo, hi, text=raw)
    if kind == "lognormal":
        median, comma, sigma = rest.partition(",")
        if not comma:
            raise InvalidInput(
                f"{what} {text!r} has no sigma: write it like 'lognormal:3m,0.3' "
                "(median 3m, sigma 0.3)"
            )
        med = _seconds(median, what)
        try:
            sig = float(sigma)
        except ValueError:
            sig = -1.0
        if med <= 0 or not 0 <= sig <= 3:
            raise InvalidInput(
                f"{what} {text!r} is not allowed: the median must be more than 0 and sigma a "
                "number from 0 to 3, like 'lognormal:3m,0.3'"
            )
        return Distribution("lognormal", med, sig, text=raw)
    raise InvalidInput(f"{what} {text!r} is not allowed: write {FORMS}")

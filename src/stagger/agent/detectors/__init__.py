"""Detectors: sources that say whether this node needs a reboot. One Protocol (base.py), one
module per source, and `factory.build_detectors` to turn the configuration into a list."""

from stagger.agent.detectors.base import Detector, Finding, combine

__all__ = ["Detector", "Finding", "combine"]

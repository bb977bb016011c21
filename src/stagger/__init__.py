"""stagger: coordinated OS reboots across a fleet."""

__version__ = "0.1.0"

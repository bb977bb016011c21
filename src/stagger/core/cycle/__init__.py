"""The node cycle: what a node does, one event at a time, with no I/O (docs/agent.md)."""

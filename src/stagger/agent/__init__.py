"""The node agent: the shell around core/machine (detectors, hooks, rebooters, state, identity)."""

"""The node agent: the shell around core/cycle (detectors, hooks, rebooters, state, identity)."""

"""Updaters: how the agent asks this host's own updater for an update (one Protocol in
base.py; update_engine over D-Bus, any command, or none). Each is imported only when used."""

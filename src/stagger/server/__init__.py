"""stagger's HTTP server: FleetLock v1 for Zincati/Flatcar and stagger agents, the status and
admin JSON API, /metrics, /healthz and /readyz. `app.build_app(settings)` wires it."""

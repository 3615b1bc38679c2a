"""The daemon: the stages wired into one TaskGroup, and what runs beside them.

`daemon` runs the pipeline and its shutdown, `wiring` builds stages from the config,
`supervisor` and `reload` keep the cameras and a reloaded config, `health` and `metrics`
serve /healthz and /metrics, `storage` keeps storage.dir under its quota, `sdnotify` speaks
to systemd.
"""

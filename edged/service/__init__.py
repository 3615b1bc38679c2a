"""The daemon: the stages wired into one TaskGroup, and what runs beside them.

`daemon` runs `edged run` in its phases and its shutdown, `pipeline` builds the stages from
the config (in pipeline order) and starts and stops them, `wiring` builds the parts the stages
are made of (shared with `upload` and `demo`), `supervisor` and `reload` keep the cameras and a
reloaded config, `health` and `metrics` serve /healthz and /metrics, `storage` keeps
storage.dir under its quota, `sdnotify` speaks to systemd.
"""

"""What the tests share: fixtures and helpers, never tests.

Test modules import from here (or get fixtures from tests/conftest.py, which registers the
fixture modules below as plugins); no test module imports another.

- `environment`: the machine (free ports, required programs, CI).
- `waiting`: waiting on a condition with a deadline, never sleeping to synchronise.
- `edged`: configs, one-shot `edged` commands in a subprocess, and `edged_running`, the whole
  daemon in this process.
- `edged_process`: `edged run` in a subprocess (`EdgedProcess`, `running`, the `edged_run`
  fixture), the one runner of the daemon as a process.
- `ledger`: the `ledger` fixture and queries on a ledger under test.
- `webhook`: the webhook `receiver` fixture.
- `rtsp`, `rtsp_server`: GStreamer RTSP cameras and the clips they become.
- `mqtt`: a real mosquitto broker and a watcher of its topics.
- `alerts`, `listener`, `images`, `activity_scene`: smaller shared pieces.
"""

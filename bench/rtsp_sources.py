"""The RTSP cameras of bench/rtsp_cameras.py: GStreamer's rtsp-server
(tests/support/rtsp_server.py), a few cameras per server process, and a check before every
run that each server is alive and answers.

Each camera connection gets a pipeline of its own (the factory is not shared). With one
shared pipeline per 8 cameras, whose clients join and leave at every run, GStreamer 1.22's
rtsp-server aborted mid-run at 32 and 64 cameras (`gst_rtsp_media_get_rates: assertion
failed`: the streams of the shared media had no rates, or different ones) or stopped
serving, and every camera of that server was lost. An unshared pipeline starts and ends with
its one client, so no client joins a pipeline in the state the clients before it left it
in; and with 4 cameras per server process, a server that still aborts loses 4 cameras, not 8.

`revive()`, before each run, restarts a server whose process has exited or that does not
answer an RTSP OPTIONS request in time (a hung server keeps its process). A server that dies
during a run still fails that run: its cameras' clips are missing and the run is refused.
"""

from __future__ import annotations

import math
import socket
import time
from pathlib import Path

from bench.common import free_port
from tests.support.rtsp_server import RtspServer

CAMERAS_PER_SERVER = 4
PROBE_TIMEOUT_S = 5.0


def answers(port: int, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the server on `port` answers an RTSP OPTIONS request with 200 in time."""
    request = f"OPTIONS rtsp://127.0.0.1:{port}/cam RTSP/1.0\r\nCSeq: 1\r\n\r\n"
    deadline = time.monotonic() + timeout_s
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(request.encode())
            reply = b""
            while b"\r\n\r\n" not in reply:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
    except OSError:  # refused, reset or timed out
        return False
    return reply.startswith(b"RTSP/1.0 200")


class Cameras:
    """`n` camera URLs served by ceil(n / per_server) server processes; a context manager
    that kills them all at its end."""

    def __init__(self, media: Path, n: int, *, per_server: int = CAMERAS_PER_SERVER) -> None:
        count = math.ceil(n / per_server)
        self.servers = [RtspServer(media, free_port(), shared=False) for _ in range(count)]
        self.urls = [self.servers[i % count].url for i in range(n)]

    def __enter__(self) -> Cameras:
        try:
            for server in self.servers:
                server.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for server in self.servers:
            server.kill()

    def revive(self) -> None:
        """A server that exited (GStreamer can abort on an assertion) or hangs is started
        again on its port, so that one failure fails one run, not every run after it."""
        for server in self.servers:
            process = server._process  # the test helper keeps its process there
            if process is not None and process.poll() is None and answers(server.port):
                continue
            state = "had stopped" if process is None or process.poll() is not None else "hung"
            print(f"note: the RTSP server on port {server.port} {state}: restarted", flush=True)
            server.kill()
            server.start()

"""A real RTSP camera for the tests and the bench: GStreamer's rtsp-server from Debian.

Four parts, one file, so that tests, bench and the server agree on the stream:

- `make_stream_file()` (venv python, PyAV): an H.264 + AAC MP4 whose frame `i` is a flat
  picture that tells `i mod 256` (`shades_of`), so tests can decode clips and check that
  they are contiguous. A short base is encoded once and its packets repeated
  (no re-encoding), which makes a long stream cheap.
- `main()` (Debian's /usr/bin/python3, which has gi): serves that file, paced in real time,
  at rtsp://127.0.0.1:PORT/cam, with the audio as AAC or as G.711 µ-law (PCMU), and prints
  `READY <url>` once it listens. `--silent` instead accepts TCP connections and never
  answers: a camera that hangs.
- `RtspServer`: starts, kills, restarts (same port), pauses and resumes that script.
- `DamagingRelay` (venv python, asyncio): a TCP relay in front of the server that damages
  the H.264 it carries on request, as a flaky network or a buggy camera would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import select
import signal
import socket
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

SERVER_PYTHON = "/usr/bin/python3"
READY = "READY"
PERIOD = 256  # frames before the picture sequence repeats


def shades_of(index: int) -> tuple[int, int, int]:
    """Frame `index` is a flat picture whose luma, U and V spell index mod 256 in steps of 32
    or 64: far apart enough to survive lossy coding, and every frame differs from the one
    before in all planes, so an encoder never skips it as unchanged."""
    index %= PERIOD
    return (index % 8) * 32 + 16, (index // 8 % 8) * 32 + 16, (index // 64) * 64 + 32


def index_of(luma: float, u: float, v: float) -> int:
    """Frame index mod 256 from a decoded picture's mean luma, U and V."""
    low = round((luma - 16) / 32) % 8
    middle = round((u - 16) / 32) % 8
    high = round((v - 32) / 64) % 4
    return high * 64 + middle * 8 + low


# ---- the stream file (venv python) ---------------------------------------------------------


def make_stream_file(
    path: Path,
    *,
    seconds: float = 600.0,
    fps: int = 8,
    gop: int = 8,
    width: int = 160,
    height: int = 120,
    noise: float = 0.0,
    sliced: bool = True,
    preset: str = "ultrafast",
) -> Path:
    """Blocking. A base of PERIOD frames (so pictures run on across repeats) is encoded once
    with AAC audio, then its packets are repeated with shifted timestamps up to `seconds`.
    `noise`: the share of the picture that is random texture, coded at constant quality, to
    set the bitrate (1/32 gives about 4 Mbit/s at 720p25). `sliced`: two slices per frame,
    which some cameras send (and split across packets). `preset`: x264's; "ultrafast" gives
    Constrained Baseline, others High profile with CABAC (other parameter sets)."""
    import av  # the venv's PyAV; the server side (Debian's python) never calls this

    base = path.with_suffix(".base.mp4")
    _encode_base(
        base,
        fps=fps,
        gop=gop,
        width=width,
        height=height,
        noise=noise,
        sliced=sliced,
        preset=preset,
    )
    period = Fraction(PERIOD, fps)
    repeats = max(1, int(-(-Fraction(seconds) // period)))
    with av.open(str(base)) as src, av.open(str(path), "w", format="mp4") as dst:
        outs = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        # AAC priming and the encoder's flush reach outside the period: repeats would overlap.
        packets = [
            p
            for p in src.demux()
            if p.dts is not None and p.time_base and 0 <= p.dts * p.time_base < period
        ]
        for n in range(repeats):
            for packet in packets:
                tb = packet.time_base
                assert tb is not None and packet.pts is not None and packet.dts is not None
                shift = int(period * n / tb)
                packet.pts += shift
                packet.dts += shift
                packet.stream = outs[packet.stream.index]
                dst.mux(packet)
                packet.pts -= shift
                packet.dts -= shift
    base.unlink()
    return path


def _encode_base(
    path: Path,
    *,
    fps: int,
    gop: int,
    width: int,
    height: int,
    noise: float,
    sliced: bool,
    preset: str,
) -> None:
    import array
    import math
    import random

    import av

    rate, samples = 16000, 1024
    rng = random.Random(5)
    grain = rng.randbytes(1 << 21) if noise else b""
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.gop_size = gop
        params = f"keyint={gop}:min-keyint={gop}:scenecut=0"
        params += "" if sliced else ":sliced-threads=0:threads=1"
        params += ":qp=26" if noise else ""  # constant quality: texture sets the bitrate
        video.options = {"preset": preset, "tune": "zerolatency", "x264-params": params}
        audio = container.add_stream("aac", rate=rate)
        audio.layout = "mono"
        sent = 0
        for index in range(PERIOD):
            frame = av.VideoFrame(width, height, "yuv420p")
            shades = shades_of(index)
            for number, plane in enumerate(frame.planes):
                value = shades[number]
                data = bytearray([value]) * plane.buffer_size
                if noise and number == 0:
                    band = int(plane.buffer_size * noise)
                    start = rng.randrange(len(grain) - band)
                    data[:band] = grain[start : start + band]
                plane.update(bytes(data))
            frame.pts, frame.time_base = index, Fraction(1, fps)
            for packet in video.encode(frame):
                container.mux(packet)
            while sent < (index + 1) * rate // fps:
                tone = array.array(
                    "f",
                    (0.2 * math.sin(2 * math.pi * 440 * (sent + k) / rate) for k in range(samples)),
                )
                chunk = av.AudioFrame(format="fltp", layout="mono", samples=samples)
                chunk.planes[0].update(tone.tobytes())
                chunk.sample_rate, chunk.pts, chunk.time_base = rate, sent, Fraction(1, rate)
                for packet in audio.encode(chunk):
                    container.mux(packet)
                sent += samples
        for stream in (video, audio):
            for packet in stream.encode(None):
                container.mux(packet)


# ---- the server (Debian's python with gi) ----------------------------------------------------


def _launch_line(media: Path, audio: str) -> str:
    video = "d.video_0 ! queue ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1"
    tail = {
        "aac": " d.audio_0 ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97",
        "pcmu": " d.audio_0 ! queue ! aacparse ! avdec_aac ! audioconvert ! audioresample"
        " ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1 pt=0",
        "none": "",
    }[audio]
    return f"( filesrc location={media} ! qtdemux name=d {video}{tail} )"


def _serve(media: Path, port: int, audio: str, shared: bool) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(_launch_line(media, audio))
    factory.set_shared(shared)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on port {port}")
    print(f"{READY} rtsp://127.0.0.1:{port}/cam", flush=True)
    GLib.MainLoop().run()


def _silent(port: int) -> None:
    """Accept every connection, read what comes, never answer."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    print(f"{READY} rtsp://127.0.0.1:{port}/cam", flush=True)
    peers: list[socket.socket] = []
    while True:
        readable, _, _ = select.select([listener, *peers], [], [])
        for sock in readable:
            if sock is listener:
                peers.append(listener.accept()[0])
            elif not sock.recv(65536):
                peers.remove(sock)
                sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, help="the MP4 to serve (H.264 + AAC)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--audio", choices=["aac", "pcmu", "none"], default="aac")
    parser.add_argument("--shared", action="store_true", help="one pipeline for all clients")
    parser.add_argument("--silent", action="store_true", help="accept, never answer")
    args = parser.parse_args()
    if args.silent:
        _silent(args.port)
    else:
        _serve(args.file, args.port, args.audio, args.shared)


# ---- the controller (venv python: tests and bench) ------------------------------------------


class RtspServer:
    """One server process on a fixed port; `start()` again after `kill()` for a restart."""

    def __init__(self, media: Path, port: int, *, audio: str = "aac", shared: bool = False) -> None:
        self.media = media
        self.port = port
        self.audio = audio
        self.shared = shared
        self.url = f"rtsp://127.0.0.1:{port}/cam"
        self._process: subprocess.Popen[str] | None = None

    def start(self, *, silent: bool = False, timeout_s: float = 20.0) -> None:
        """Blocking: returns once the server listens (its READY line)."""
        argv = [SERVER_PYTHON, __file__, "--port", str(self.port), "--audio", self.audio]
        argv += ["--file", str(self.media)]
        argv += ["--shared"] if self.shared else []
        argv += ["--silent"] if silent else []
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
        self._process = process
        assert process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.2)
            if ready:
                line = process.stdout.readline()
                if line.startswith(READY):
                    return
                if not line:
                    break
            if process.poll() is not None:
                break
        self.kill()
        raise RuntimeError(f"the RTSP server on port {self.port} did not start")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        """Started and not exited (a paused server still runs)."""
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """SIGKILL: connections drop at once, as when a camera loses power."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a paused process must be able to die
            process.kill()
        if process is not None:
            process.wait(10)
            if process.stdout:
                process.stdout.close()

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing more is sent (a stalled camera)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)


# ---- a relay that damages the video (venv python, asyncio) -----------------------------------

#: RTP payload type of the video, as the launch line sets it (pt=96).
VIDEO_PT = 96
RTP_HEADER = 12


class DamagingRelay:
    """Listens on 127.0.0.1:0 and relays each connection to the server; `damage()` spoils the
    next video RTP packets sent to the client. RTSP over TCP interleaves `$`, channel, a
    16-bit length and the RTP packet with the RTSP messages, so packets can be found and
    changed in flight. Kinds of damage:

    - "payload": the slice data of a video packet overwritten with random bytes (its NAL or
      FU-A header kept): a picture that decodes wrong until the next keyframe;
    - "nal": a packet of random H.264 bytes inserted with the next sequence number and the
      current timestamp (later packets renumbered): garbage the depacketizer must reject;
    - "clock": like "nal", but with a timestamp hours away from the stream's;
    - "rtp": random bytes framed as a video packet (bad version, sequence and timestamp).
    """

    KINDS = ("payload", "nal", "clock", "rtp")

    def __init__(self, upstream_port: int, *, seed: int = 7) -> None:
        self._upstream_port = upstream_port
        self._rng = random.Random(seed)
        self._pending: list[str] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        #: How many packets were damaged, by kind.
        self.done: dict[str, int] = dict.fromkeys(self.KINDS, 0)

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    @property
    def pending(self) -> int:
        """Damage asked for and not yet done."""
        return len(self._pending)

    def damage(self, *kinds: str) -> None:
        """Spoil one video packet per kind given, in order, as they come."""
        assert all(kind in self.KINDS for kind in kinds), kinds
        self._pending.extend(kinds)

    async def __aenter__(self) -> DamagingRelay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        except OSError:
            client_w.close()
            return
        tasks = [
            asyncio.create_task(self._pipe(client_r, server_w)),
            asyncio.create_task(self._downstream(server_r, client_w)),
        ]
        self._tasks.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)
            for writer in (client_w, server_w):
                writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()

    async def _downstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Server to client: RTSP answers pass as they are, RTP packets through `_spoil`."""
        shift = 0  # sequence numbers added by inserted packets
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                first = await reader.readexactly(1)
                if first != b"$":
                    head = first + await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                    writer.write(head + await reader.readexactly(length))
                    await writer.drain()
                    continue
                header = await reader.readexactly(3)  # channel, 16-bit length
                channel, size = header[0], int.from_bytes(header[1:3])
                packet = bytearray(await reader.readexactly(size))
                out = [packet]
                if len(packet) > RTP_HEADER and packet[1] & 0x7F == VIDEO_PT and channel % 2 == 0:
                    seq = (int.from_bytes(packet[2:4]) + shift) & 0xFFFF
                    packet[2:4] = seq.to_bytes(2)
                    if self._pending:
                        out, shift = self._spoil(packet, shift)
                for item in out:
                    writer.write(b"$" + bytes([channel]) + len(item).to_bytes(2) + item)
                await writer.drain()

    def _spoil(self, packet: bytearray, shift: int) -> tuple[list[bytearray], int]:
        kind = self._pending[0]
        rng = self._rng
        if kind == "payload":
            nal_type = packet[RTP_HEADER] & 0x1F
            keep = RTP_HEADER + (2 if nal_type == 28 else 1)  # FU-A: indicator and header
            if nal_type not in (1, 5, 28) or len(packet) < keep + 16:
                return [packet], shift  # parameter sets and tiny packets: wait for a slice
            start = keep + (len(packet) - keep) // 4
            packet[start:] = rng.randbytes(len(packet) - start)
            out = [packet]
        elif kind in ("nal", "clock"):
            garbage = bytearray(packet[:RTP_HEADER])
            garbage[1] &= 0x7F  # no marker: the frame goes on with the real packet
            if kind == "clock":
                stamp = int.from_bytes(garbage[4:8]) + rng.randrange(3600, 36000) * 90000
                garbage[4:8] = (stamp & 0xFFFFFFFF).to_bytes(4)
            garbage += rng.randbytes(200)
            seq = int.from_bytes(packet[2:4])
            packet[2:4] = ((seq + 1) & 0xFFFF).to_bytes(2)
            out, shift = [garbage, packet], shift + 1
        else:
            garbage = bytearray(rng.randbytes(RTP_HEADER + 200))
            garbage[0] = (garbage[0] & 0x3F) | 0x40  # RTP version 1: never valid
            garbage[1] = (garbage[1] & 0x80) | VIDEO_PT
            out = [garbage, packet]
        self._pending.pop(0)
        self.done[kind] += 1
        return out, shift


if __name__ == "__main__":
    main()

"""The public listener while attackers hold connections half-open: does the cloud get through?

Starts a real `edged run` against the in-process emulator, lets one clip wait for its result,
then alternates two phases, `--rounds` times each: a reference phase, where legitimate
callbacks (the clip's own URL; after the first, repeats answered 200) are timed on an idle
listener, and a held phase, where `--held` connections that sent half a request head are
kept open (reopened as edged closes them) while the same callbacks are timed. Prints the
round trip's p50 and p99 in each phase, their ratio, and how long held connections lived.

    python bench/listener_hold.py --held 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import EDGED, free_port, wait_for_port
from edged.emulator import EmulatorOptions, run_emulator
from edged.ledger.store import Ledger
from edged.media.samples import make_clip

HALF_HEAD = b"POST /callbacks/1/aaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: x\r\nContent-Le"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def timed_callbacks(url: str, count: int) -> list[float]:
    body = {"status": 0, "data": {"text": "Nobody is there."}}
    times = []
    # A connection per callback, as the service makes them.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        for _ in range(count):
            started = time.perf_counter()
            async with http.post(url, json=body) as answer:
                await answer.read()
                if answer.status != 200:
                    raise SystemExit(f"a legitimate callback got {answer.status}")
            times.append(time.perf_counter() - started)
    return times


async def hold(port: int, count: int, stop: asyncio.Event, lived: list[float]) -> None:
    """Keeps `count` half-open connections until `stop`; how long each closed one lived."""

    async def one(number: int) -> None:
        # The attackers come from 32 loopback addresses; the legitimate callbacks from
        # 127.0.0.1, as the cloud's come from its own.
        source = (f"127.0.0.{2 + number % 32}", 0)
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=source)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            opened = time.monotonic()
            writer.write(HALF_HEAD)
            read = asyncio.ensure_future(reader.read())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait([read, stopped], return_when=asyncio.FIRST_COMPLETED)
            if read.done():
                lived.append(time.monotonic() - opened)
            read.cancel()
            stopped.cancel()
            writer.close()

    await asyncio.gather(*(one(number) for number in range(count)))


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="edged-hold-"))
    folder = work / "nvr"
    folder.mkdir()
    options = EmulatorOptions(callback_faults=["drop"])
    async with run_emulator(options, seed=1) as emulator:
        port, metrics = free_port(), free_port()
        config = work / "config.yaml"
        config.write_text(
            f"api:\n  base_url: {emulator.url}\n  api_key: k\n"
            f"callback:\n  listen: 127.0.0.1:{port}\n  public_url: http://127.0.0.1:{port}\n"
            f"  result_timeout: 1h\n  max_connections: {args.max_connections}\n"
            f"cameras:\n  - name: gate\n    folder: {folder}\n"
            f"storage:\n  dir: {work / 'state'}\n"
            f"metrics:\n  listen: 127.0.0.1:{metrics}\n"
        )
        process = await asyncio.create_subprocess_exec(
            *EDGED, "run", "-c", str(config), stderr=asyncio.subprocess.DEVNULL
        )
        try:
            await asyncio.to_thread(wait_for_port, port)
            await asyncio.to_thread(make_clip, folder / "a.mp4.part", seconds=1.0)
            os.rename(folder / "a.mp4.part", folder / "a.mp4")
            ledger = Ledger(work / "state")
            deadline = time.monotonic() + 60
            while True:
                rows = ledger.db.rows("SELECT id, callback_token, state FROM clips")
                if rows and rows[0]["state"] == "submitted":
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("the clip was never submitted: no reference, no figures")
                await asyncio.sleep(0.1)
            url = f"http://127.0.0.1:{port}/callbacks/{rows[0]['id']}/{rows[0]['callback_token']}"
            reference: list[list[float]] = []
            held: list[list[float]] = []
            lived: list[float] = []
            for _ in range(args.rounds):
                reference.append(await timed_callbacks(url, args.callbacks))
                # The attackers in a process of their own: their churn must not slow the
                # legitimate client's own loop, only edged.
                attacker = await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--attack",
                    str(port),
                    "--held",
                    str(args.held),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
                await asyncio.sleep(args.settle_s)  # let the held connections pile up
                held.append(await timed_callbacks(url, args.callbacks))
                assert attacker.stdin is not None
                attacker.stdin.close()
                out, _ = await attacker.communicate()
                lived += json.loads(out or b"[]")
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()
    for name, runs in (("reference (idle listener)", reference), ("held", held)):
        p50 = [percentile(run, 0.5) * 1000 for run in runs]
        p99 = [percentile(run, 0.99) * 1000 for run in runs]
        print(
            f"{name:26} p50 median {statistics.median(p50):7.1f} ms (spread {min(p50):.1f}–"
            f"{max(p50):.1f}), p99 median {statistics.median(p99):7.1f} ms (spread"
            f" {min(p99):.1f}–{max(p99):.1f})"
        )
    ratio = statistics.median(percentile(r, 0.99) for r in held) / statistics.median(
        percentile(r, 0.99) for r in reference
    )
    print(f"p99 held / reference: {ratio:.2f}")
    if lived:
        print(
            f"held connections closed by edged: {len(lived)}, lived median"
            f" {statistics.median(lived):.2f} s, max {max(lived):.2f} s"
        )


async def attack(port: int, count: int) -> None:
    """Hold connections until standard input closes; print how long closed ones lived."""
    stop = asyncio.Event()
    lived: list[float] = []
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    holder = asyncio.create_task(hold(port, count, stop, lived))
    await reader.read()
    stop.set()
    await holder
    print(json.dumps(lived))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attack", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--held", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--callbacks", type=int, default=200)
    parser.add_argument("--settle-s", type=float, default=3.0)
    parser.add_argument("--max-connections", type=int, default=256)
    parsed = parser.parse_args()
    if parsed.attack:
        asyncio.run(attack(parsed.attack, parsed.held))
    else:
        asyncio.run(main(parsed))

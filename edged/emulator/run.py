"""A local stand-in for the memories.ai security API, for tests, `edged demo` and integrators.

It speaks the four endpoints of API.md, answers in any of the documented envelope
variants, POSTs results to callback URLs, and can be told to fail in the ways the real
service may (see EmulatorOptions). In process::

    async with run_emulator(EmulatorOptions(callback_delay_s=0.05)) as emu:
        ...  # point edged at emu.url; inspect emu.received and emu.callbacks_sent

In another process: `edged emulate --port 8765`, then drive it through `/_emulator/*`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from edged.aio import serving
from edged.emulator.answers import ENDPOINTS
from edged.emulator.app import Emulator
from edged.emulator.options import (
    ENVELOPES,
    CallbackRecord,
    EmulatorOptions,
    OptionError,
    ReceivedRequest,
)

__all__ = [
    "ENDPOINTS",
    "ENVELOPES",
    "CallbackRecord",
    "Emulator",
    "EmulatorOptions",
    "OptionError",
    "ReceivedRequest",
    "add_arguments",
    "run_emulator",
    "run_from_args",
    "serve",
]

log = logging.getLogger(__name__)

_SHUTDOWN_TIMEOUT_S = 2.0  # in-flight requests get this long when the emulator stops


@asynccontextmanager
async def run_emulator(
    options: EmulatorOptions | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    seed: int | None = None,
) -> AsyncIterator[Emulator]:
    """Serve an Emulator on host:port (0: a free port) for the duration of the block."""
    emulator = Emulator(options, seed=seed)
    async with serving(
        emulator.app(), host, port, shutdown_timeout_s=_SHUTDOWN_TIMEOUT_S
    ) as runner:
        emulator.host = host
        emulator.port = runner.addresses[0][1]
        yield emulator


async def serve(
    options: EmulatorOptions,
    host: str,
    port: int,
    *,
    shutdown_trigger: asyncio.Event,
    seed: int | None = None,
) -> None:
    """Serve until `shutdown_trigger` is set; says where it listens once it does."""
    async with run_emulator(options, host, port, seed=seed) as emulator:
        print(f"edged emulator listening on {emulator.url}", flush=True)
        await shutdown_trigger.wait()
        log.info("emulator stopping")


# ---- command line ------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(i?)b?|b)?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def _size(text: str) -> int:
    match = _SIZE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r}: expected bytes, or a size like 20MB or 8GB")
    number, prefix, binary = match.groups()
    power = "kmgt".index(prefix.lower()) + 1 if prefix else 0
    return int(float(number) * (1024 if binary else 1000) ** power)


def _duration(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds, or 90s, 5m, 2h")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def _statuses(text: str) -> list[int]:
    try:
        return [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected statuses like 503,429") from None


def _words(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "off", "") else float(text)


# flag, EmulatorOptions field, value parser, metavar, help
_FLAGS: tuple[tuple[str, str, Callable[[str], object] | None, str | None, str], ...] = (
    ("--api-key", "api_key", str, "KEY", "accept only this raw key (default: any)"),
    ("--callback-delay", "callback_delay_s", float, "SECONDS", "delay before a callback"),
    ("--latency", "latency_s", float, "SECONDS", "delay before answering each API request"),
    ("--error-rate", "error_rate", float, "FRACTION", "answer one of --error-statuses"),
    ("--error-statuses", "error_statuses", _statuses, "503,429", "statuses for --error-rate"),
    ("--fail-next", "fail_next", _statuses, "503,429", "answer the next requests with these"),
    ("--retry-after", "retry_after_s", _optional_float, "SECONDS", "with 429/503, or 'none'"),
    ("--retry-after-statuses", "retry_after_statuses", _statuses, "429,503", "which carry it"),
    ("--outage", "outage_s", _duration, "DURATION", "refuse every request this long, e.g. 5m"),
    ("--outage-statuses", "outage_statuses", _statuses, "503,429", "in equal parts, in order"),
    ("--envelope", "envelope", str, None, "success envelope variant"),
    ("--error-envelope-rate", "error_envelope_rate", float, "FRACTION", "HTTP 200, error body"),
    ("--duplicate-callbacks", "duplicate_callbacks", int, "N", "extra copies of each callback"),
    ("--late-callback", "late_callback_s", float, "SECONDS", "extra delay before callbacks"),
    ("--drop-callbacks", "drop_callbacks", None, None, "acknowledge but never call back"),
    ("--callback-retries", "callback_retries", int, "N", "re-POSTs after a non-2xx answer"),
    ("--callback-retry-delay", "callback_retry_delay_s", float, "SECONDS", "between re-POSTs"),
    (
        "--callback-faults",
        "callback_faults",
        _words,
        "drop,late:40,duplicate:2,malformed,ok",
        "the next uploads' callbacks, one each",
    ),
    ("--max-file-bytes", "max_file_bytes", _size, "SIZE", "largest upload, e.g. 8GB"),
    ("--max-duration", "max_duration_s", _duration, "DURATION", "longest video, e.g. 2h"),
    ("--drop-connection-rate", "drop_connection_rate", float, "FRACTION", "cut uploads off"),
    ("--text", "text", str, "TEXT", "answer this text instead of the scripted analysis"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `edged emulate`: one per EmulatorOptions field, plus where to listen."""
    defaults = EmulatorOptions().to_json()
    parser.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8765, help="0: any (default: %(default)s)")
    for flag, name, parse, metavar, text in _FLAGS:
        if parse is None:
            parser.add_argument(flag, dest=name, action="store_true", help=text)
            continue
        choices = ENVELOPES if name == "envelope" else None
        default = defaults[name]
        parser.add_argument(
            flag,
            dest=name,
            type=parse,
            default=default,
            choices=choices,
            metavar=metavar,
            help=text if default is None else f"{text} (default: {default})",
        )
    parser.add_argument("--seed", type=int, help="seed for random failures, for repeatable runs")


def options_from_args(args: argparse.Namespace) -> EmulatorOptions:
    values = {name: getattr(args, name) for _, name, _, _, _ in _FLAGS}
    for name in ("error_statuses", "outage_statuses", "retry_after_statuses"):
        values[name] = tuple(values[name])
    values["fail_next"] = list(values["fail_next"])
    values["callback_faults"] = list(values["callback_faults"])
    return EmulatorOptions(**values)


def run_from_args(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; 0 on a clean stop, 1 if it cannot listen, 2 on bad flags."""
    try:
        options = options_from_args(args)
    except OptionError as exc:
        print(f"edged emulate: {exc}", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:  # the edged CLI may have set logging up already
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        asyncio.run(_serve_until_signal(options, args.host, args.port, args.seed))
    except OSError as exc:
        print(f"edged emulate: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve_until_signal(
    options: EmulatorOptions, host: str, port: int, seed: int | None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = (signal.SIGINT, signal.SIGTERM)
    for signum in handled:
        loop.add_signal_handler(signum, stop.set)
    try:
        await serve(options, host, port, shutdown_trigger=stop, seed=seed)
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edged.emulator",
        description="A local stand-in for the memories.ai security API.",
    )
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

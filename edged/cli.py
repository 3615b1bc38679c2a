"""The `edged` command. Exit codes: 0 ok, 1 runtime error, 2 usage or config error."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from edged import __version__
from edged.config.model import Config, ConfigError, load_config, redacted_yaml
from edged.config.secrets import config_secrets, exposed_secrets
from edged.logs import configure as configure_logging

log = logging.getLogger("edged")

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help="config file (default: $EDGED_CONFIG or /etc/edged/config.yaml)",
    )


def build_parser(*, emulator_flags: bool = True) -> argparse.ArgumentParser:
    """The parser of every command. Without `emulator_flags` `edged emulate` gets no flags of
    its own, and the emulator (aiohttp's server and all) is not imported: main() leaves them
    out when the command line cannot be `edged emulate`, which saves every other command a
    good part of its start-up."""
    parser = argparse.ArgumentParser(
        prog="edged", description="Camera edge ingestion daemon: clips to person-aware alerts."
    )
    parser.add_argument("--version", action="version", version=f"edged {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check-config", help="validate a config and print it, redacted")
    _config_argument(check)

    upload = commands.add_parser("upload", help="send one video file through the pipeline")
    _config_argument(upload)
    upload.add_argument("file", type=Path)
    upload.add_argument("--camera", default="upload", help="camera name recorded for the clip")
    upload.add_argument("--sync", action="store_true", help="use uploadFileSync (no callback)")
    upload.add_argument("--wait", action="store_true", help="wait for the result and print it")

    run = commands.add_parser("run", help="the daemon, in the foreground")
    _config_argument(run)

    status = commands.add_parser("status", help="queue, cameras, errors and alerts from the ledger")
    _config_argument(status)
    status.add_argument("--clip", type=int, metavar="ID", help="one clip's timings and events")

    retry = commands.add_parser("retry", help="put failed or expired clips back in the queue")
    _config_argument(retry)
    retry.add_argument("clip_ids", nargs="*", type=int, metavar="CLIP_ID")
    retry.add_argument("--failed", action="store_true", help="every failed or expired clip")
    retry.add_argument(
        "--skipped",
        action="store_true",
        help="every clip skipped by a schedule, a budget or for no activity",
    )

    backfill = commands.add_parser(
        "backfill", help="queue a camera's recordings of a time range (audits, re-analysis)"
    )
    _config_argument(backfill)
    backfill.add_argument("--camera", required=True, help="camera name (as in status)")
    backfill.add_argument(
        "--from",
        dest="start",
        required=True,
        help="ISO time (local unless it has an offset), or a duration ago: 6h",
    )
    backfill.add_argument("--to", dest="end", default="now", help="same forms; default now")
    backfill.add_argument(
        "--again",
        action="store_true",
        help="queue files already in the ledger once more (re-analysis)",
    )

    commands.add_parser("demo", help="the whole pipeline on this machine, against the emulator")

    emulate = commands.add_parser("emulate", help="run the local stand-in of the security API")
    if emulator_flags:
        from edged.emulator import add_arguments

        add_arguments(emulate)
    return parser


def default_config_path() -> Path:
    return Path(os.environ.get("EDGED_CONFIG", "/etc/edged/config.yaml"))


def _load(path: Path | None) -> Config:
    return load_config(path or default_config_path())


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(emulator_flags="emulate" in words).parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"edged: invalid config:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "emulate":
        from edged.emulator import run_from_args

        configure_logging(level=args.log_level, json_lines=args.log_format == "json")
        return run_from_args(args)

    if args.command == "demo":
        from edged.commands.demo import run_demo

        configure_logging(level="WARNING")
        return asyncio.run(run_demo())

    config_path = args.config or default_config_path()
    config = _load(config_path)
    secrets = config_secrets(config).values()
    configure_logging(level=args.log_level, json_lines=args.log_format == "json", secrets=secrets)
    exposed = exposed_secrets(config_path, config)
    if exposed:
        log.warning(
            "%s is readable by other users and holds secrets (%s): chmod 600 it (or 640 for"
            " edged's group), or give them as ${ENV} or *_file",
            config_path,
            ", ".join(exposed),
        )
    if args.command == "check-config":
        from edged.config.notes import config_notes

        print(redacted_yaml(config), end="")
        for note in config_notes(config):  # as YAML comments: the output stays a config
            print(f"# {note}")
        _inotify_check(config)
        return EXIT_OK
    from edged.service.storage import private_storage

    problem = private_storage(config.storage.dir)
    if problem is not None:
        log.warning("%s", problem)
    if args.command == "upload":
        from edged.commands.upload import upload_command

        return asyncio.run(
            upload_command(config, args.file, camera=args.camera, sync=args.sync, wait=args.wait)
        )
    if args.command == "run":
        from edged.service.daemon import DaemonError, run_daemon

        try:
            return asyncio.run(
                run_daemon(
                    config,
                    config_path=args.config or default_config_path(),
                    grace_s=config.api.shutdown_grace,
                )
            )
        except DaemonError as exc:
            print(f"edged: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if args.command == "backfill":
        from edged.commands.backfill import backfill_command

        return asyncio.run(
            backfill_command(config, args.camera, args.start, args.end, again=args.again)
        )
    if args.command in ("status", "retry"):
        return _ledger_command(config, args)
    raise AssertionError(f"unhandled command {args.command}")


def _inotify_check(config: Config) -> None:
    """check-config: what the folder cameras need of inotify, and the limits found."""
    from edged.sources.inotify_limits import inotify_report

    report = inotify_report(config)
    for line in report.lines:  # as YAML comments: the output stays a config
        print(f"# {line}")
    if report.warning is not None:
        log.warning("%s", report.warning)


def _ledger_command(config: Config, args: argparse.Namespace) -> int:
    from edged.clip import ClipState
    from edged.commands.status import build_report, format_report
    from edged.commands.trace import clip_trace
    from edged.ledger.store import LEDGER_FILE, Ledger
    from edged.logs import redact
    from edged.printable import printable

    if not (config.storage.dir / LEDGER_FILE).exists():
        print(f"edged: no ledger in {config.storage.dir} yet (has edged run?)", file=sys.stderr)
        return EXIT_RUNTIME
    ledger = Ledger(config.storage.dir)
    try:
        if args.command == "status" and args.clip is not None:
            trace = clip_trace(ledger, args.clip)
            if trace is None:
                print(f"edged status: no clip {args.clip} in the ledger", file=sys.stderr)
                return EXIT_RUNTIME
            # Task ids, errors and results come from outside: no escape sequence reaches
            # the operator's terminal.
            # Redacted too: rows written before a secret was configured (or by an older
            # edged) may hold it.
            print(printable(redact(trace), keep_newlines=True))
            return EXIT_OK
        if args.command == "status":
            print(printable(redact(format_report(build_report(ledger))), keep_newlines=True))
            return EXIT_OK
        if not args.clip_ids and not args.failed and not args.skipped:
            print("edged retry: give CLIP_ID…, --failed or --skipped", file=sys.stderr)
            return EXIT_USAGE
        every = [ClipState.FAILED, ClipState.EXPIRED] if args.failed else []
        if args.skipped:
            every += [ClipState.SKIPPED_BUDGET, ClipState.SKIPPED_SCHEDULE, ClipState.SKIPPED_IDLE]
        requeued = ledger.uploads.retry(args.clip_ids, every=every)
        print(f"requeued {len(requeued)} clips" + (f": {requeued}" if requeued else ""))
        skipped = sorted(set(args.clip_ids) - set(requeued))
        if skipped:
            print(f"not failed or expired, left as they are: {skipped}", file=sys.stderr)
        return EXIT_OK
    finally:
        ledger.close()


if __name__ == "__main__":
    sys.exit(main())

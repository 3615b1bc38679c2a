"""`edged backfill`: queue the recordings of one camera in a time range (audits, re-analysis).

Safe while the daemon runs: it only adds clips to the ledger, which the daemon's uploader
picks up. Files already in the ledger are skipped unless `--again` is given.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from edged.config.cameras import FolderCamera
from edged.config.model import Config, parse_duration
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.sources.recordings import Naming, Verdict, examine, scan


class BackfillError(ValueError):
    """The command's arguments do not name a camera or a time range."""


def parse_when(text: str, now: float | None = None) -> float:
    """An ISO 8601 time (no offset: this machine's local time), `now`, or a duration ago
    (`2h`: two hours ago). Returns epoch seconds."""
    now = time.time() if now is None else now
    if text == "now":
        return now
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BackfillError(
            f"{text!r}: expected an ISO time (2024-05-01T13:00, local unless it has an offset),"
            " 'now', or a duration ago such as 2h"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the machine's local zone
    return moment.timestamp()


def _recordings(config: Config, camera: str, start: float, end: float) -> list[tuple[Naming, str]]:
    """Blocking: the files of `camera` recorded in [start, end], oldest first."""
    namings = [
        Naming.of(c)
        for c in config.cameras
        if isinstance(c, FolderCamera) and (c.name == camera or c.preset is not None)
    ]
    chosen: list[tuple[float, str, Naming]] = []
    for naming in namings:
        for mtime, path in scan(naming):
            owner = naming.identify(path)
            if owner is None or owner[0] != camera:
                continue
            when = owner[1].timestamp() if owner[1] is not None else mtime
            if start <= when <= end:
                chosen.append((when, path, naming))
    chosen.sort(key=lambda item: item[0])
    return [(naming, path) for _, path, naming in chosen]


async def backfill_command(
    config: Config, camera: str, start_text: str, end_text: str, *, again: bool
) -> int:
    try:
        start, end = parse_when(start_text), parse_when(end_text)
    except BackfillError as exc:
        print(f"edged backfill: {exc}", file=sys.stderr)
        return 2
    if end < start:
        print("edged backfill: --to is before --from", file=sys.stderr)
        return 2
    folders = [c for c in config.cameras if isinstance(c, FolderCamera)]
    if not any(c.name == camera or c.preset for c in folders):
        names = ", ".join(c.name for c in folders) or "none"
        print(
            f"edged backfill: no folder camera {camera!r} (folder cameras: {names})",
            file=sys.stderr,
        )
        return 2
    files = await asyncio.to_thread(_recordings, config, camera, start, end)
    span = f"{_iso(start)} to {_iso(end)}"
    print(f"{len(files)} recordings of {camera} from {span}")
    db = AsyncLedger(await asyncio.to_thread(Ledger, config.storage.dir))
    tag = f"again-{int(time.time())}" if again else None
    verdicts: Counter[Verdict] = Counter()
    try:
        with tqdm(total=len(files), unit="file", file=sys.stderr, disable=None) as bar:
            for naming, path in files:
                result = await examine(db, naming, path, again_tag=tag)
                verdicts[result.verdict] += 1
                if result.verdict is Verdict.INCOMPLETE:
                    tqdm.write(f"skipped {Path(path).name}: {result.reason}", file=sys.stderr)
                bar.update(1)
    finally:
        await db.aclose()
    print(
        f"queued {verdicts[Verdict.QUEUED]}, already in the ledger {verdicts[Verdict.KNOWN]},"
        f" not complete {verdicts[Verdict.INCOMPLETE]},"
        f" gone or changing {verdicts[Verdict.GONE] + verdicts[Verdict.CHANGING]}"
    )
    return 0


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

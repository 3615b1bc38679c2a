"""The matcher stage: analyzed clips → person matches → alerts in the outbox → clip done.

Matching a clip and enqueueing its alerts is one transaction with marking it done,
so a crash either redoes both or neither: never a done clip with lost alerts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from edged.alerts import outbox
from edged.alerts.model import alert_id_for
from edged.clip import Clip, ClipState
from edged.ledger import Ledger
from edged.ledger_async import AsyncLedger
from edged.matcher import Match, parse_matches, select_present, summarize

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    person_names: tuple[str, ...]
    min_confidence: float
    sink_names: tuple[str, ...]
    instance: str


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def build_alerts(
    clip: Clip,
    text: str,
    matches: Sequence[Match],
    policy: AlertPolicy,
    install_id: str,
    now: float,
) -> list[outbox.NewAlert]:
    start = clip.start.timestamp() if clip.start else clip.found_at
    end = start + clip.duration_s if clip.duration_s is not None else None
    alerts = []
    for match in matches:
        moment = match.timestamps[0] if match.timestamps else (clip.duration_s or 0.0) / 2
        alert_id = alert_id_for(install_id, clip.id, match.person)
        payload = {
            "alert_id": alert_id,
            "person": match.person,
            "confidence": round(match.confidence, 3),
            "camera": clip.camera,
            "clip": {
                "id": clip.id,
                "start": _iso(start),
                "end": _iso(end) if end is not None else None,
                "duration_s": clip.duration_s,
                "file": clip.path.name,
            },
            "moment_s": moment,
            "timestamps": list(match.timestamps),
            "seen_at": _iso(start + moment),
            "summary": summarize(text),
            "instance": policy.instance,
            "created_at": _iso(now),
        }
        payload_json = json.dumps(payload, sort_keys=True)
        for sink in policy.sink_names:
            alerts.append(
                outbox.NewAlert(
                    alert_id,
                    sink,
                    clip.id,
                    clip.camera,
                    match.person,
                    match.confidence,
                    start + moment,
                    payload_json,
                )
            )
    return alerts


def finish_clip(ledger: Ledger, clip: Clip, policy: AlertPolicy, now: float) -> list[Match]:
    """Blocking: match one analyzed clip and, in the same transaction, queue its alerts and
    mark it done. Returns the matches that raised alerts."""
    result = ledger.result(clip.id)
    text = result.text if result else ""
    present = select_present(parse_matches(text, policy.person_names), policy.min_confidence)
    alerts = build_alerts(clip, text, present, policy, ledger.install_id(), now)
    ledger.mark_done(clip.id, extra=lambda conn: outbox.enqueue(conn, alerts, now))
    return present


class Analyzer:
    def __init__(
        self,
        db: AsyncLedger,
        policy: AlertPolicy,
        *,
        on_alerts: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        poll_s: float = 1.0,
    ) -> None:
        self._db = db
        self._policy = policy
        self._on_alerts = on_alerts
        self._clock = clock
        self._poll_s = poll_s
        self.wake = asyncio.Event()

    async def run(self) -> None:
        while True:
            clips = await self._db.run(self._db.ledger.in_state, ClipState.ANALYZED)
            for clip in clips:
                present = await self._db.run(
                    finish_clip, self._db.ledger, clip, self._policy, self._clock()
                )
                names = ", ".join(m.person for m in present) or "nobody"
                log.info("done camera=%s clip=%s persons: %s", clip.camera, clip.id, names)
                if present:
                    self._on_alerts()
            try:
                await asyncio.wait_for(self.wake.wait(), self._poll_s)
                self.wake.clear()
            except TimeoutError:
                pass

"""The matcher stage: analyzed clips → person matches → policy → snapshots → outbox → done.

For each analyzed clip: the result is read from the ledger, parsed in a worker thread (the
ledger's thread only runs SQL, so a hostile text can slow its clip, never the box), and the
person policy applied; a picture of each alert is decoded in a thread, before the clip is
marked done, since the clip file may be deleted afterwards (storage quota, keep_uploaded);
then its alerts are queued in the transaction that marks it done, so a crash redoes both or
neither: never a done clip with lost alerts. Redoing after a crash only rewrites the same
picture files.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from edged.aio import woken
from edged.alert_body import AlertBody, ClipRef, Snapshot
from edged.alerts.model import alert_id_for
from edged.alerts.policy import AlertPolicy
from edged.clip import Clip, ClipState
from edged.config.alerts import UNKNOWN_PERSON
from edged.ledger import outbox
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.media.snapshot_store import SnapshotStore
from edged.results.matcher import Match, Reading, read_result, select_present, summarize
from edged.results.verdict import one_line

__all__ = [
    "AlertPolicy",
    "Analyzer",
    "Plan",
    "build_alerts",
    "commit_clip",
    "finish_clip",
    "plan_alerts",
]

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
#: After this many results in a row without a valid verdict, and every as many after, a
#: warning says that the service does not follow the verdict format.
NO_VERDICT_WARN_AFTER = 5


@dataclass(frozen=True, slots=True)
class Plan:
    """What one analyzed clip raises: the matches that alert, and those the policy holds back."""

    text: str
    raised: tuple[Match, ...]
    skipped: tuple[tuple[Match, str], ...] = ()
    reading: Reading | None = None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _start(clip: Clip) -> float:
    return clip.start.timestamp() if clip.start else clip.found_at


def _moment(clip: Clip, match: Match) -> float:
    """Seconds into the clip: the first time the person is seen, else the clip's middle."""
    return match.timestamps[0] if match.timestamps else (clip.duration_s or 0.0) / 2


def read_clip(text: str, policy: AlertPolicy) -> Reading:
    """CPU-bound: run in a worker thread, never on the loop or the ledger's thread."""
    unknown = UNKNOWN_PERSON if policy.unknown else None
    return read_result(text, policy.person_names, unknown_name=unknown)


def plan_from(clip: Clip, text: str, reading: Reading, policy: AlertPolicy) -> Plan:
    """The reading's matches, split by the policy into raised and skipped."""
    matches = list(reading.matches)
    matches += [reading.unknown] if reading.unknown is not None else []
    raised: list[Match] = []
    skipped: list[tuple[Match, str]] = []
    for match in select_present(matches, policy.min_confidence):
        seen_at = _start(clip) + _moment(clip, match)
        reason = policy.skip_reason(clip.camera, match.person, seen_at)
        if reason is None:
            raised.append(match)
        else:
            skipped.append((match, reason))
    return Plan(text, tuple(raised), tuple(skipped), reading)


def plan_alerts(ledger: Ledger, clip: Clip, policy: AlertPolicy) -> Plan:
    """Blocking, all in the caller's thread: for tools and tests. The stage reads the result
    on the ledger's thread and parses it in a worker thread."""
    result = ledger.results.result(clip.id)
    text = result.text if result else ""
    return plan_from(clip, text, read_clip(text, policy), policy)


def build_alerts(
    clip: Clip,
    text: str,
    matches: Sequence[Match],
    policy: AlertPolicy,
    install_id: str,
    now: float,
    snapshots: Mapping[str, Snapshot] | None = None,
    reading: Reading | None = None,
) -> list[outbox.NewAlert]:
    """The alerts of `matches`, one per sink. Pass the clip's `reading` when there is one: its
    summary, title and threat level are then not worked out again (in the worker thread that
    builds the alerts)."""
    summary = reading.summary if reading is not None else summarize(text)
    title = reading.title if reading is not None else None
    threat_level = reading.threat_level if reading is not None else None
    start = _start(clip)
    end = start + clip.duration_s if clip.duration_s is not None else None
    alerts = []
    for match in matches:
        moment = _moment(clip, match)
        alert_id = alert_id_for(install_id, clip.id, match.person)
        body = AlertBody(
            alert_id=alert_id,
            person=match.person,
            confidence=round(match.confidence, 3),
            camera=clip.camera,
            clip=ClipRef(
                id=clip.id,
                start=_iso(start),
                end=_iso(end) if end is not None else None,
                duration_s=clip.duration_s,
                file=clip.path.name,
                path=str(clip.path),
            ),
            moment_s=moment,
            timestamps=tuple(match.timestamps),
            seen_at=_iso(start + moment),
            # Text from the result: control characters are gone, so no sink or receiver
            # (a shell script, an argv, a terminal) gets a NUL or an escape sequence.
            summary=one_line(summary, 1000),
            title=title,
            threat_level=threat_level,
            snapshot=(snapshots or {}).get(match.person),
            instance=policy.instance,
            created_at=_iso(now),
        )
        payload_json = body.to_json()
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


def finish_clip(
    ledger: Ledger,
    clip: Clip,
    policy: AlertPolicy,
    now: float,
    plan: Plan | None = None,
    snapshots: Mapping[str, Snapshot] | None = None,
) -> list[Match]:
    """Blocking, all in the caller's thread: queue the clip's alerts and mark it done, in one
    transaction. Returns the matches that raised alerts."""
    plan = plan if plan is not None else plan_alerts(ledger, clip, policy)
    install_id = ledger.meta.install_id()
    alerts = build_alerts(
        clip, plan.text, plan.raised, policy, install_id, now, snapshots, plan.reading
    )
    detail = plan.reading.detail() if plan.reading is not None else None
    commit_clip(ledger, clip, alerts, now, plan.reading, detail)
    return list(plan.raised)


def commit_clip(
    ledger: Ledger,
    clip: Clip,
    alerts: Sequence[outbox.NewAlert],
    now: float,
    reading: Reading | None,
    detail: str | None,
) -> None:
    """Blocking, SQL only (the ledger's thread): the alerts, the verdict counters and `done`,
    in one transaction."""
    has_verdict = reading.has_verdict if reading is not None else None
    ledger.results.mark_done(clip.id, alerts=alerts, has_verdict=has_verdict, detail=detail)


class Analyzer:
    def __init__(
        self,
        db: AsyncLedger,
        policy: AlertPolicy,
        *,
        snapshots: SnapshotStore | None = None,
        on_alerts: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        poll_s: float = 1.0,
    ) -> None:
        self._db = db
        self._policy = policy
        self._snapshots = snapshots
        self._on_alerts = on_alerts
        self._clock = clock
        self._poll_s = poll_s
        self._pruned_at = float("-inf")
        self.wake = asyncio.Event()

    async def run(self) -> None:
        install_id = await self._db.call(self._db.ledger.meta.install_id)
        while True:
            await self._prune()
            clips = await self._db.call(self._db.ledger.clips.in_state, ClipState.ANALYZED)
            for clip in clips:
                await self._finish(clip, install_id)
            await woken(self.wake, self._poll_s)

    async def _finish(self, clip: Clip, install_id: str) -> None:
        ledger = self._db.ledger
        result = await self._db.call(ledger.results.result, clip.id)
        text = result.text if result else ""
        reading = await asyncio.to_thread(read_clip, text, self._policy)
        plan = plan_from(clip, text, reading, self._policy)
        for match, reason in plan.skipped:
            log.info(
                "no alert person=%s camera=%s clip=%s: %s",
                match.person,
                clip.camera,
                clip.id,
                reason,
            )
        pictures: dict[str, Snapshot] = {}
        if self._snapshots is not None and self._snapshots.enabled:
            for match in plan.raised:
                alert_id = alert_id_for(install_id, clip.id, match.person)
                at_s = match.timestamps[0] if match.timestamps else None
                taken = await asyncio.to_thread(self._snapshots.take, clip, alert_id, at_s)
                if taken is not None:
                    pictures[match.person] = taken
        now = self._clock()
        alerts = await asyncio.to_thread(
            build_alerts, clip, text, plan.raised, self._policy, install_id, now, pictures, reading
        )
        detail = reading.detail()
        await self._db.call(commit_clip, ledger, clip, alerts, now, reading, detail)
        names = ", ".join(m.person for m in plan.raised) or "nobody"
        log.info("done camera=%s clip=%s alerts: %s", clip.camera, clip.id, names)
        if not reading.has_verdict:
            await self._no_verdict(clip, reading)
        if plan.raised:
            self._on_alerts()

    async def _no_verdict(self, clip: Clip, reading: Reading) -> None:
        """Never silent: each result without a verdict is logged (and counted in the ledger);
        a run of them says the service does not follow the format."""
        mentioned = ", ".join(m.person for m in reading.matches if m.present) or "nobody"
        log.info(
            "no verdict camera=%s clip=%s (%s%s): prose mentions %s, below min_confidence",
            clip.camera,
            clip.id,
            reading.status,
            f": {reading.problem}" if reading.problem else "",
            mentioned,
        )
        streak = await self._db.call(self._db.ledger.verdicts.streak)
        if streak and streak % NO_VERDICT_WARN_AFTER == 0:
            log.warning(
                "the last %d results had no valid verdict: the service is not following the"
                " verdict format (a fenced ```json block at the end); persons named only in"
                " prose do not alert camera=%s clip=%s",
                streak,
                clip.camera,
                clip.id,
            )

    async def _prune(self) -> None:
        now = self._clock()
        if self._snapshots is None or now - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = now
        removed = await asyncio.to_thread(self._snapshots.prune, now)
        if removed:
            log.info("removed %d snapshots older than snapshot_retention", removed)

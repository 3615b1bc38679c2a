"""Workers that move clips from `queued` to `submitted` (or `analyzed` in sync mode).

Retry state lives in the ledger: the attempt is counted when a clip is taken, and the
next try's time is stored with the failure, so a restart resumes the same schedule.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from edged.aio import woken
from edged.backoff import retry_delay
from edged.clip import Clip
from edged.ledger.thread import AsyncLedger
from edged.media.probe import ClipRejected, probe_video
from edged.media.source_check import changed_since_queued
from edged.schedule import DayUsage
from edged.upload.api import AnalysisRequest, ApiClient, ApiError, FileChanged, ProgressFn
from edged.upload.api_codes import Failure, PauseReason
from edged.upload.guardrails import Guardrails
from edged.upload.outage import ServiceOutage
from edged.upload.pause import UploadPause

log = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    SUBMITTED = "submitted"
    ANALYZED = "analyzed"
    RETRY = "retry"
    FAILED = "failed"
    PAUSED = "paused"  # every upload waits: refused key, no credit, no permission
    DUPLICATE = "duplicate"  # the service already had it: waiting for that upload's result
    SKIPPED = "skipped"  # a cost guardrail (schedule, budget) kept it back


@dataclass(frozen=True, slots=True)
class UploadSettings:
    mode: str  # "async" or "sync"
    public_url: str
    max_attempts: int
    max_file_bytes: int
    max_duration_s: float
    workers: int = 2
    backoff_base_s: float = 5.0
    backoff_cap_s: float = 900.0
    auth_retry_s: float = 300.0  # how often paused uploads try again (api.pause_probe_interval)
    idle_poll_s: float = 1.0  # picks up clips queued by other processes (`edged retry`)


def callback_url(public_url: str, clip: Clip) -> str:
    return f"{public_url}/callbacks/{clip.id}/{clip.callback_token}"


class Uploader:
    def __init__(
        self,
        db: AsyncLedger,
        api: ApiClient,
        template: AnalysisRequest,
        settings: UploadSettings,
        *,
        wake: asyncio.Event | None = None,
        guardrails: Guardrails | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._api = api
        self._template = template
        self._settings = settings
        self.wake = wake or asyncio.Event()
        self._guardrails = guardrails
        self._rng = rng or random.Random()
        self._clock = clock
        self._pause = UploadPause(db, settings.auth_retry_s, clock=clock)
        self._stopping = asyncio.Event()
        self._outage = ServiceOutage(db)

    @property
    def auth_paused(self) -> bool:
        return self._pause.holding

    @property
    def paused(self) -> PauseReason | None:
        """Why uploads are paused, until an upload is accepted again (probes included)."""
        return self._pause.reason

    def set_guardrails(self, guardrails: Guardrails | None) -> None:
        self._guardrails = guardrails

    def resume_after_auth(self) -> None:
        """The config was reloaded (a new key, credit bought): try again now rather than at
        the next probe."""
        self._pause.try_now()

    async def pause(self, why: PauseReason, reason: str) -> None:
        """Pause every upload from outside (a callback reporting no credit)."""
        await self._pause.begin(why, reason)

    def stop_taking(self) -> None:
        """Finish the uploads in flight, start no new one (graceful shutdown)."""
        self._stopping.set()
        self.wake.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for index in range(self._settings.workers):
                group.create_task(self._worker(), name=f"uploader-{index}")

    async def _worker(self) -> None:
        while not self._stopping.is_set():
            if self._pause.holding:
                await self._pause.wait_unless(self._stopping)
                continue
            clip = await self._db.call(self._db.ledger.uploads.take_for_upload)
            if clip is None:
                await self._idle()
                continue
            await self.upload(clip)

    async def _idle(self) -> None:
        due = await self._db.call(self._db.ledger.uploads.next_due_at)
        timeout = self._settings.idle_poll_s
        if due is not None:
            timeout = max(0.0, min(timeout, due - self._clock()))
        await woken(self.wake, timeout)

    async def upload(self, clip: Clip, progress: ProgressFn | None = None) -> Outcome:
        """Upload a clip already taken (`uploading`) and record what came of it."""
        try:
            return await self._upload(clip, progress)
        except asyncio.CancelledError:
            # Shut down mid-upload: give the clip back so the next start sends it first.
            await asyncio.shield(
                self._db.call(self._db.ledger.uploads.release, clip.id, "interrupted")
            )
            raise
        except Exception as exc:
            # Something this clip's answer brought that edged did not foresee: it must cost
            # this clip an attempt, not stop every camera's uploads (and, at each restart,
            # again: the clip would be first in line).
            log.exception("upload went wrong camera=%s clip=%s", clip.camera, clip.id)
            reason = f"internal error while uploading: {type(exc).__name__}: {exc}"
            return await self._retry(clip, reason, None, counted=True)

    async def _usage_since(self, since: float, camera: str | None) -> DayUsage:
        return await self._db.call(self._db.ledger.uploads.usage_since, since, camera)

    async def _upload(self, clip: Clip, progress: ProgressFn | None) -> Outcome:
        settings = self._settings
        ledger = self._db.ledger
        started = self._clock()
        if clip.attempts > settings.max_attempts:
            # Attempts are counted before the work runs: only uploads cut off by crashes get
            # a clip here, and one that crashes edged every time must not loop for ever.
            reason = f"gave up after {clip.attempts - 1} attempts, the last cut off by a crash"
            return await self._fail(clip, reason)
        if self._guardrails is not None:
            skip = await self._guardrails.check(clip, self._clock(), self._usage_since)
            if skip is not None:
                await self._db.call(ledger.uploads.mark_skipped, clip.id, skip.state, skip.reason)
                log.warning("not uploaded camera=%s clip=%s: %s", clip.camera, clip.id, skip.reason)
                return Outcome.SKIPPED
        try:
            await asyncio.to_thread(
                probe_video,
                clip.path,
                max_bytes=settings.max_file_bytes,
                max_duration_s=settings.max_duration_s,
            )
        except ClipRejected as exc:
            return await self._fail(clip, str(exc))
        except FileNotFoundError:
            return await self._fail(clip, "source gone: the file was deleted before upload")
        except OSError as exc:
            return await self._fail(clip, f"cannot read the file: {exc.strerror or exc}")

        sync = settings.mode == "sync"
        request = self._template
        if not sync:
            request = dataclasses.replace(request, callback=callback_url(settings.public_url, clip))
        log.info("uploading camera=%s clip=%s attempt=%d", clip.camera, clip.id, clip.attempts)
        try:
            envelope = await self._api.upload_file(
                clip.path,
                request,
                sync=sync,
                progress=progress,
                check=lambda fd: changed_since_queued(clip, fd),
            )
        except ApiError as exc:
            return await self._api_failed(clip, exc)
        except FileChanged as exc:
            return await self._fail(clip, str(exc))
        except FileNotFoundError:
            return await self._fail(clip, "source gone: the file was deleted before upload")
        except OSError as exc:
            return await self._retry(clip, f"reading the clip failed: {exc}", None, counted=True)

        if await self._outage.over():
            self.wake.set()
        await self._pause.lifted_by(started)
        if sync:
            await self._db.call(ledger.uploads.mark_submitted, clip.id, envelope.task_id)
            await self._db.call(
                ledger.results.record_result,
                clip.id,
                task_id=envelope.task_id,
                text=envelope.text or "",
                tokens=envelope.tokens,
                raw=json.dumps({"code": envelope.code, "text": envelope.text}),
            )
            log.info("analyzed camera=%s clip=%s (sync)", clip.camera, clip.id)
            return Outcome.ANALYZED
        await self._db.call(ledger.uploads.mark_submitted, clip.id, envelope.task_id)
        log.info("submitted camera=%s clip=%s task=%s", clip.camera, clip.id, envelope.task_id)
        return Outcome.SUBMITTED

    async def _api_failed(self, clip: Clip, exc: ApiError) -> Outcome:
        if exc.failure is Failure.PAUSED:
            # Not the clip's fault: it goes back to the queue, its attempt not counted.
            await self._db.call(self._db.ledger.uploads.release, clip.id, str(exc))
            await self._pause.begin(exc.pause or PauseReason.REFUSED_KEY, str(exc))
            return Outcome.PAUSED
        if exc.failure is Failure.PERMANENT:
            return await self._fail(clip, str(exc))
        if exc.failure is Failure.DUPLICATE:
            return await self._duplicate(clip, str(exc))
        tries = exc.meaning.max_tries
        if tries is not None and clip.attempts >= tries:
            return await self._fail(clip, f"{exc} (gave up after {clip.attempts} attempts)")
        # An answer about this clip counts against it; the service being busy, down or
        # unreachable does not (it is retried for as long as that lasts), however it says so:
        # 0429 in an envelope and HTTP 429 alike.
        counted = exc.status is not None and exc.meaning.counted
        return await self._retry(clip, str(exc), exc.retry_after_s, counted=counted)

    async def _retry(
        self, clip: Clip, reason: str, retry_after_s: float | None, *, counted: bool
    ) -> Outcome:
        if not counted:
            self._outage.noted(self._clock(), retry_after_s)
        if counted and clip.attempts >= self._settings.max_attempts:
            return await self._fail(clip, f"{reason} (gave up after {clip.attempts} attempts)")
        delay = retry_delay(
            clip.failures + 1,
            retry_after_s,
            base_s=self._settings.backoff_base_s,
            cap_s=self._settings.backoff_cap_s,
            rng=self._rng,
        )
        await self._db.call(
            self._db.ledger.uploads.mark_retry,
            clip.id,
            reason,
            self._clock() + delay,
            counted=counted,
        )
        log.warning(
            "upload failed camera=%s clip=%s attempt=%d retry_in=%.1fs: %s",
            clip.camera,
            clip.id,
            clip.attempts,
            delay,
            reason,
        )
        return Outcome.RETRY

    async def _fail(self, clip: Clip, reason: str) -> Outcome:
        await self._db.call(self._db.ledger.uploads.mark_failed, clip.id, reason)
        log.error("clip failed camera=%s clip=%s: %s", clip.camera, clip.id, reason)
        return Outcome.FAILED

    async def _duplicate(self, clip: Clip, reason: str) -> Outcome:
        """The service says it has this upload already (an earlier attempt that edged did not
        see accepted, e.g. cut off by a crash). The clip waits for that attempt's result,
        which the listener accepts with that attempt's token; if none comes within
        callback.result_timeout, the expirer sends it again, so nothing is lost."""
        await self._db.call(self._db.ledger.uploads.mark_submitted, clip.id, None)
        await self._db.call(self._db.ledger.clips.note, clip.id, "duplicate", reason)
        log.warning(
            "the service already has this clip camera=%s clip=%s: waiting for its result (%s)",
            clip.camera,
            clip.id,
            reason,
        )
        return Outcome.DUPLICATE

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

from edged.aio import first_of, woken
from edged.backoff import retry_delay
from edged.clip import Clip
from edged.ledger.thread import AsyncLedger
from edged.media.probe import ClipRejected, probe_video
from edged.media.source_check import changed_since_queued
from edged.upload.api import AnalysisRequest, ApiClient, ApiError, FileChanged, ProgressFn
from edged.upload.api_codes import PAUSE_ADVICE, Failure, PauseReason
from edged.upload.guardrails import Guardrails

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
        self._auth_ok = asyncio.Event()  # clear while uploads are paused
        self._auth_ok.set()
        self._paused: PauseReason | None = None
        self._pause_on_record = True  # a pause of an earlier run may still be in the ledger
        self._paused_at = 0.0
        self._probe: asyncio.TimerHandle | None = None
        self._stopping = asyncio.Event()
        # When the service first refused or failed to answer since it last accepted a clip.
        self._down_since: float | None = None
        self._asked_to_wait_until = 0.0  # the latest Retry-After of that outage

    @property
    def auth_paused(self) -> bool:
        return not self._auth_ok.is_set()

    @property
    def paused(self) -> PauseReason | None:
        """Why uploads are paused, until an upload is accepted again (probes included)."""
        return self._paused

    def set_guardrails(self, guardrails: Guardrails | None) -> None:
        self._guardrails = guardrails

    def resume_after_auth(self) -> None:
        """The config was reloaded (a new key, credit bought): try again now rather than at
        the next probe."""
        if not self._auth_ok.is_set():
            log.warning("uploads resumed after a reload: trying again now")
            self._auth_ok.set()

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
            if not self._auth_ok.is_set():
                await self._auth_resumed_or_stopping()
                continue
            clip = await self._db.call(self._db.ledger.uploads.take_for_upload)
            if clip is None:
                await self._idle()
                continue
            await self.upload(clip)

    async def _auth_resumed_or_stopping(self) -> None:
        """Paused by a refused key: a stop must not wait for a key that may never come."""
        await first_of(self._auth_ok.wait(), self._stopping.wait())

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
            skip = await self._db.call(self._guardrails.check, ledger, clip, self._clock())
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

        await self._service_is_up()
        await self._unpaused(started)
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
            await self._pause(exc.pause or PauseReason.REFUSED_KEY, str(exc))
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

    async def _service_is_up(self) -> None:
        """After an outage each waiting clip has its own backoff, up to its cap: without
        this, the backlog would drain only as those timers run out, long after recovery."""
        if self._down_since is None:
            return
        since, self._down_since = self._down_since, None
        not_before, self._asked_to_wait_until = self._asked_to_wait_until, 0.0
        due = await self._db.call(self._db.ledger.uploads.retry_now, since, not_before)
        if due:
            log.info("the service is back: %d clips waiting for it are sent now", due)
            self.wake.set()

    async def _retry(
        self, clip: Clip, reason: str, retry_after_s: float | None, *, counted: bool
    ) -> Outcome:
        if not counted:
            now = self._clock()
            if self._down_since is None:
                self._down_since = now
            if retry_after_s is not None:
                self._asked_to_wait_until = max(self._asked_to_wait_until, now + retry_after_s)
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

    async def pause(self, why: PauseReason, reason: str) -> None:
        """Pause every upload from outside (a callback reporting no credit)."""
        await self._pause(why, reason)

    async def _pause(self, why: PauseReason, reason: str) -> None:
        """Every upload waits; one try every auth_retry_s, or at once on a reload."""
        first = self._paused is None
        if first:
            self._paused_at = self._clock()
        if self._paused is not why:  # a new pause, or another reason for it
            await self._db.call(self._db.ledger.meta.set_pause, why.value, reason, self._clock())
            self._pause_on_record = True
        self._paused = why
        if not self._auth_ok.is_set():
            return
        self._auth_ok.clear()
        (log.critical if first else log.error)(
            "uploads paused (%s): %s. The queue is kept: %s (one try every %.0fs meanwhile)",
            why.value,
            reason,
            PAUSE_ADVICE[why],
            self._settings.auth_retry_s,
        )
        if self._probe is not None:
            self._probe.cancel()
        loop = asyncio.get_running_loop()
        self._probe = loop.call_later(self._settings.auth_retry_s, self._auth_ok.set)

    async def _unpaused(self, upload_started: float) -> None:
        if not self._pause_on_record:
            return
        if self._paused is not None and upload_started < self._paused_at:
            return  # begun before the pause: it says nothing of whether it is over
        why, self._paused = self._paused, None
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        self._auth_ok.set()
        await self._db.call(self._db.ledger.meta.set_pause, None, None, self._clock())
        self._pause_on_record = False
        if why is not None:
            log.warning("uploads resumed: the service accepts uploads again (was %s)", why.value)

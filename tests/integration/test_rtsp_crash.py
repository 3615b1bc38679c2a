"""`kill -9` of a real `edged run` in the middle of an RTSP clip: on the next start the
partial clip is recovered from its `.part` (everything that was on disk), queued, uploaded
to the emulator and done."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from edged.emulator import Emulator
from edged.sources.rtsp_files import final_of
from tests.support.edged import write_config
from tests.support.emulator import uploads_of
from tests.support.rtsp import (
    ServerFactory,
    camera_yaml,
    check_contiguous,
    video_seconds,
)


async def test_kill_9_mid_clip_recovers_the_partial_clip_and_uploads_it(
    emulator: Emulator, rtsp_server: ServerFactory, edged_run, tmp_path: Path
):
    server = await rtsp_server()
    # keep_uploaded: the test reads the clip after it is done (edged would delete it at once).
    config = write_config(
        tmp_path, emulator.url, extra="cameras:\n" + camera_yaml("yard", server.url)
    )
    text = config.read_text().replace("storage:\n", "storage:\n  keep_uploaded: 1h\n")
    config.write_text(text)
    clips_dir = tmp_path / "state" / "clips" / "yard"
    first = await edged_run(config)
    seen = 0.0

    async def two_seconds_on_disk() -> bool:
        nonlocal seen
        parts = list(clips_dir.rglob("*.part"))
        seen = await asyncio.to_thread(video_seconds, parts[0]) if parts else 0.0
        return seen >= 2.0

    await first.until(two_seconds_on_disk, "2s of the first clip on disk")
    code = await first.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL
    (part,) = list(clips_dir.rglob("*.part"))
    assert await asyncio.to_thread(video_seconds, part) >= seen

    second = await edged_run(config)
    sql = "SELECT id, path, start_at, duration_s, state FROM clips WHERE path=?"
    recovered: list[dict[str, object]] = []

    async def recovered_and_done() -> bool:
        recovered[:] = await second.rows(sql, str(final_of(part)))
        return bool(recovered) and recovered[0]["state"] == "done"

    await second.until(recovered_and_done, "the recovered clip done")
    code = await second.stop(signal.SIGTERM)
    err = second.log()
    assert code == 0, err
    assert "recovered camera=yard" in err, err

    (clip,) = recovered
    assert not part.exists() and final_of(part).exists()
    assert isinstance(clip["duration_s"], float) and clip["duration_s"] >= seen
    await check_contiguous([clip])  # plays, every frame in order
    assert len(uploads_of(emulator, int(str(clip["id"])))) == 1

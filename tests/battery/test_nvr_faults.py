"""NVR folder faults against a real `edged run`: recordings deleted while queued or while
uploading, replaced while queued or while uploading, unreadable for edged's user, symlink
loops, the folder missing at start, deleted and made again, and thousands of recordings
already there at start.

Promises at stake (DESIGN.md): "No clip is lost" (a clip leaves the ledger only as done or
failed with a reason), "At-least-once upload" with no other duplicate, "edged never writes,
moves or deletes files inside an NVR folder", "Bad input gets a clear error and changes
nothing else". For each fault: edged keeps running, nothing that could be saved is lost,
one clear log line, no duplicate upload.

Uploads are held, where a test needs clips to stay queued, by a key the emulator refuses:
uploads pause at the first 401 and resume when a SIGHUP brings the right key (README,
"Reload"). `bench/catchup.py` is the long version of the catch-up test (50,000 files).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pwd
import shutil
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from edged.emulator import Emulator
from edged.media.samples import make_clip
from tests.support.edged import write_config
from tests.support.edged_process import EdgedProcess, running
from tests.support.nvr import RIGHT_KEY, accepted, accepted_for, by_name, resume_uploads, states

pytestmark = pytest.mark.timeout(150)


# ---- a real `edged run` ----------------------------------------------------------------------


def folder_config(base: Path, api_url: str, folder: Path, options: str = "") -> Path:
    """One folder camera `nvr`; uploads held by a key the emulator refuses."""
    camera = f"cameras:\n  - name: nvr\n    folder: {folder}\n    since: 1h\n    settle: 1s\n"
    return write_config(base, api_url, api_key="wrong-key", extra=camera + options)


async def held_uploads(emulator: Emulator, daemon: EdgedProcess, folder: Path) -> None:
    """A first recording is refused (401), which pauses uploads: later clips stay queued."""
    emulator.options.api_key = RIGHT_KEY
    await write_recording(folder / "primer.mp4", "primer")
    await daemon.until(lambda: daemon.lines("uploads paused"), "uploads to pause")


def _write_recording(path: Path, title: str, how: str) -> bytes:
    """Blocking: a 1 s recording at `path`, written the way NVRs do; returns its bytes."""
    with tempfile.TemporaryDirectory() as scratch:  # outside the NVR folder
        clip = make_clip(Path(scratch, "clip.mp4"), seconds=1, width=160, height=120, title=title)
        data = clip.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "rename":  # a temporary name (ignored by edged), renamed into place
        part = path.with_name(path.name + ".part")
        part.write_bytes(data)
        os.replace(part, path)
    else:  # written in place, in chunks
        with path.open("wb") as handle:
            for offset in range(0, len(data), 4096):
                handle.write(data[offset : offset + 4096])
                handle.flush()
    return data


async def write_recording(path: Path, title: str, *, how: str = "rename") -> str:
    """Returns the recording's SHA-256."""
    data = await asyncio.to_thread(_write_recording, path, title, how)
    return hashlib.sha256(data).hexdigest()


# ---- deleted, replaced ---------------------------------------------------------------------


async def test_a_recording_deleted_while_queued_fails_as_source_gone_and_one_deleted_mid_upload_is_sent_whole(  # noqa: E501
    emulator: Emulator, tmp_path: Path
):
    folder = tmp_path / "nvr"
    folder.mkdir()
    config = folder_config(tmp_path, emulator.url, folder)
    async with running(config, serving=False) as daemon:
        await held_uploads(emulator, daemon, folder)
        await write_recording(folder / "gone.mp4", "gone")
        during = await write_recording(folder / "during.mp4", "during")
        kept = await write_recording(folder / "kept.mp4", "kept")
        queued = {"gone.mp4": "queued", "during.mp4": "queued", "kept.mp4": "queued"}
        await daemon.until(states(daemon, queued), "three clips queued")
        await asyncio.to_thread((folder / "gone.mp4").unlink)

        emulator.options.latency_s = 1.0  # each upload stays in flight a while
        await resume_uploads(daemon)
        await daemon.until(lambda: daemon.has_open(folder / "during.mp4"), "during.mp4 sent")
        await asyncio.to_thread((folder / "during.mp4").unlink)

        done = {"primer.mp4": "done", "during.mp4": "done", "kept.mp4": "done"}
        await daemon.until(states(daemon, {**done, "gone.mp4": "failed"}), "every clip settled")
        [gone] = (await by_name(daemon))["gone.mp4"]
        assert gone["last_error"].startswith("source gone"), gone
        assert len(daemon.lines("clip failed", f"clip={gone['id']}", "source gone")) == 1

    # The file deleted mid-upload was sent whole: what was validated is what arrived.
    assert accepted(emulator)[during] == 1 and accepted(emulator)[kept] == 1
    assert all(count == 1 for count in accepted(emulator).values()), accepted(emulator)
    assert accepted_for(emulator, gone["id"]) == []


async def test_a_recording_replaced_mid_upload_is_sent_as_validated_and_the_new_one_once(
    emulator: Emulator, tmp_path: Path
):
    folder = tmp_path / "nvr"
    folder.mkdir()
    config = folder_config(tmp_path, emulator.url, folder)
    async with running(config, serving=False) as daemon:
        await held_uploads(emulator, daemon, folder)
        first = await write_recording(folder / "cam.mp4", "first take")
        await daemon.until(states(daemon, {"cam.mp4": "queued"}), "cam.mp4 queued")
        [validated] = (await by_name(daemon))["cam.mp4"]

        emulator.options.latency_s = 1.0
        await resume_uploads(daemon)
        await daemon.until(lambda: daemon.has_open(folder / "cam.mp4"), "cam.mp4 sent")
        # The NVR rewrites the recording under a temporary name and renames it over.
        second = await write_recording(folder / "cam.mp4", "second take")

        async def both_done() -> bool:
            clips = (await by_name(daemon))["cam.mp4"]
            return len(clips) == 2 and all(c["state"] == "done" for c in clips)

        await daemon.until(both_done, "both versions of cam.mp4 done")
        clips = (await by_name(daemon))["cam.mp4"]

    old, new = clips
    assert old["id"] == validated["id"] and old["size"] == validated["size"]
    assert accepted_for(emulator, old["id"]) == [first]  # the bytes that were validated
    assert accepted_for(emulator, new["id"]) == [second]
    assert all(count == 1 for count in accepted(emulator).values()), accepted(emulator)


async def test_a_recording_replaced_while_queued_is_not_sent_twice(
    emulator: Emulator, tmp_path: Path
):
    folder = tmp_path / "nvr"
    folder.mkdir()
    config = folder_config(tmp_path, emulator.url, folder)
    async with running(config, serving=False) as daemon:
        await held_uploads(emulator, daemon, folder)
        await write_recording(folder / "cam.mp4", "first take")
        await daemon.until(states(daemon, {"cam.mp4": "queued"}), "cam.mp4 queued")
        second = await write_recording(folder / "cam.mp4", "second take")

        async def both_queued() -> bool:
            return len((await by_name(daemon))["cam.mp4"]) == 2

        await daemon.until(both_queued, "the new cam.mp4 queued as a clip of its own")
        await resume_uploads(daemon)

        async def settled() -> bool:
            clips = (await by_name(daemon))["cam.mp4"]
            return all(c["state"] in ("done", "failed") for c in clips)

        await daemon.until(settled, "both clips of cam.mp4 settled")
        old, new = (await by_name(daemon))["cam.mp4"]

    # The first take is gone for good (nothing holds it): its clip cannot be sent. The
    # second take is sent once, under its own clip, with the size validated for it.
    assert accepted(emulator)[second] == 1, "the second take was sent twice"
    assert new["state"] == "done" and accepted_for(emulator, new["id"]) == [second]
    assert old["state"] == "failed" and accepted_for(emulator, old["id"]) == []
    assert accepted(emulator)[second] == 1


# ---- permissions, symlinks, the folder itself --------------------------------------------------


#: Root reads every file whatever its mode: as root, edged is run as this user instead.
UNPRIVILEGED = "nobody"


@pytest.fixture
def shared_dir() -> Any:
    """A folder that an unprivileged user can reach (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="edged-nvr-faults-"))
    path.chmod(0o755)
    yield path
    for inner in path.rglob("*"):  # what the test locked, so that it can be removed
        with contextlib.suppress(OSError):
            inner.chmod(0o755)
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(
    os.geteuid() == 0 and not shutil.which("setpriv"),
    reason="as root, needs setpriv (util-linux) to run edged as an unprivileged user",
)
async def test_unreadable_recordings_are_reported_once_and_queued_when_readable(
    emulator: Emulator, shared_dir: Path
):
    user, uid = None, os.geteuid()
    state = shared_dir / "state"
    state.mkdir()
    if uid == 0:
        nobody = pwd.getpwnam(UNPRIVILEGED)
        user, uid = UNPRIVILEGED, nobody.pw_uid
        os.chown(state, nobody.pw_uid, nobody.pw_gid)  # edged's state: all it writes
    folder = shared_dir / "nvr"
    hidden = folder / "private"  # a camera's folder only the NVR may list
    hidden.mkdir(parents=True)
    await write_recording(hidden / "unseen.mp4", "unseen")
    hidden.chmod(0o000)
    config = folder_config(shared_dir, emulator.url, folder)
    emulator.options.api_key = None  # uploads go through at once here
    async with running(config, serving=False, user=user) as daemon:
        await daemon.until(lambda: daemon.lines("cannot list camera=nvr"), "a clear report")
        [unlisted] = daemon.lines("cannot list camera=nvr", str(hidden))
        assert "Permission denied" in unlisted, unlisted
        # The NVR writes one recording edged may not read yet, and a readable one.
        locked = folder / "locked.mp4"
        await write_recording(locked, "locked", how="in-place")
        await asyncio.to_thread(locked.chmod, 0o000)
        readable = await write_recording(folder / "readable.mp4", "readable")
        await daemon.until(states(daemon, {"readable.mp4": "done"}), "the readable clip done")
        await daemon.until(lambda: daemon.lines("cannot read", "locked.mp4"), "a clear report")
        [report] = daemon.lines("cannot read", "locked.mp4")
        assert "Permission denied" in report and f"uid {uid}" in report, report
        assert "locked.mp4" not in await by_name(daemon)

        await asyncio.to_thread(locked.chmod, 0o644)  # the operator fixes the permissions
        await daemon.until(states(daemon, {"locked.mp4": "done"}), "the unlocked clip done")
        assert len(daemon.lines("cannot read", "locked.mp4")) == 1

    counts = accepted(emulator)
    assert counts[readable] == 1 and len(counts) == 2 and set(counts.values()) == {1}


def _symlink_maze(folder: Path) -> None:
    """Links an NVR tree may hold: loops back up the tree, a link to itself, a second name
    for a recording, a link to a folder outside."""
    (folder / "day" / "cam").mkdir(parents=True)
    os.symlink("..", folder / "day" / "cam" / "up")  # loops: day/cam/up/cam/up/...
    os.symlink(folder, folder / "again")  # the whole tree once more, absolute
    os.symlink("self.mp4", folder / "self.mp4")  # ELOOP on open
    os.symlink("/", folder / "root")  # the whole machine


@pytest.mark.parametrize("poll", [False, True], ids=["inotify", "polling"])
async def test_symlink_loops_neither_hang_nor_grow_edged_nor_duplicate_a_recording(
    emulator: Emulator, tmp_path: Path, poll: bool
):
    folder = tmp_path / "nvr"
    folder.mkdir()
    await asyncio.to_thread(_symlink_maze, folder)
    before = await write_recording(folder / "day" / "cam" / "before.mp4", "before")
    os.symlink("day/cam/before.mp4", folder / "alias.mp4")  # one recording, two names
    options = "    poll: 0.3s\n" if poll else ""
    config = folder_config(tmp_path, emulator.url, folder, options)
    emulator.options.api_key = None
    async with running(config, serving=False) as daemon:
        await daemon.until(lambda: daemon.lines("catch-up camera=nvr"), "the catch-up scan")
        after = await write_recording(folder / "day" / "cam" / "after.mp4", "after")
        top = await write_recording(folder / "top.mp4", "top", how="in-place")

        async def all_done() -> bool:
            clips = await daemon.clips()
            return len(clips) >= 3 and all(c["state"] == "done" for c in clips)

        await daemon.until(all_done, "three clips done")
        # A few more polls over the maze: nothing more may come of it.
        end = time.monotonic() + 2.0
        await daemon.until(lambda: time.monotonic() > end, "a few more polls")
        clips = await daemon.clips()
        peak_mb = daemon.rss_kib() / 1024

    # A link is never followed, even to a recording of the same folder.
    assert sorted(Path(c["path"]).name for c in clips) == ["after.mp4", "before.mp4", "top.mp4"]
    assert accepted(emulator) == Counter({before: 1, after: 1, top: 1})
    print(f"\nsymlink loops ({'polling' if poll else 'inotify'}): peak RSS {peak_mb:.0f} MB")


def _hostile_entries(folder: Path, private: Path) -> None:
    """Blocking: what whoever can write into an NVR folder might leave there."""
    os.symlink(private / "secret.mp4", folder / "front-0001.mp4")  # another camera's recording
    os.symlink("/etc/passwd", folder / "passwd.txt")
    (folder / "notes.txt").write_text("root:x:0:0:root:/root:/bin/bash\n" * 100)  # "tty video"
    (folder / "list.m3u8").write_text(  # a playlist of the private recording
        f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1,\n{private / 'secret.mp4'}\n#EXT-X-ENDLIST\n"
    )
    (folder / "list.ffconcat").write_text(f"ffconcat version 1.0\nfile {private / 'secret.mp4'}\n")
    os.mkfifo(folder / "pipe.mp4")
    # A name that would colour the terminal and start a forged log line if printed as it is.
    (folder / "red\x1b[31m\n2026-01-01 00:00:00,000 ERROR forged.txt").write_text("x" * 100)


@pytest.mark.parametrize("poll", [False, True], ids=["inotify", "polling"])
async def test_links_fifos_text_and_playlists_in_the_folder_are_never_read_or_sent(
    emulator: Emulator, tmp_path: Path, poll: bool
):
    """A link to another camera's recording or to /etc/passwd, text (FFmpeg's tty demuxer
    calls it video), playlists naming other files, and a FIFO renamed over a recording that
    is being written: none is uploaded, none blocks the camera, each is refused with a line."""
    folder, private = tmp_path / "nvr", tmp_path / "private"
    folder.mkdir()
    secret = await write_recording(private / "secret.mp4", "another camera")
    await asyncio.to_thread(_hostile_entries, folder, private)
    options = "    pattern: '*'\n" + ("    poll: 0.3s\n" if poll else "")
    config = folder_config(tmp_path, emulator.url, folder, options)
    emulator.options.api_key = None
    async with running(config, serving=False) as daemon:
        await daemon.until(lambda: daemon.lines("catch-up camera=nvr"), "the catch-up scan")
        # A recording being written (only its first bytes so far), then a FIFO put in its place.
        sample = tmp_path / "scratch" / "sample.mp4"
        await asyncio.to_thread(make_clip, sample, seconds=1, width=160, height=120)
        await asyncio.to_thread((folder / "slow.mp4").write_bytes, sample.read_bytes()[:2000])
        await daemon.until(
            lambda: daemon.lines("skipping camera=nvr", "slow.mp4"), "slow.mp4 seen as unfinished"
        )
        await asyncio.to_thread(os.mkfifo, folder / ".slow.fifo")
        await asyncio.to_thread(os.replace, folder / ".slow.fifo", folder / "slow.mp4")
        after = await write_recording(folder / "after.mp4", "after")
        await daemon.until(states(daemon, {"after.mp4": "done"}), "after.mp4 done")
        for name in ("front-0001.mp4", "passwd.txt", "pipe.mp4"):
            await daemon.until(
                lambda name=name: daemon.lines("ignoring camera=nvr", name), f"{name} refused"
            )
        for name in ("notes.txt", "list.m3u8", "list.ffconcat"):
            await daemon.until(
                lambda name=name: daemon.lines("skipping camera=nvr", name, "accepts MP4"),
                f"{name} refused",
            )
        await daemon.until(lambda: daemon.lines("ignoring camera=nvr", "slow.mp4", "FIFO"), "FIFO")
        escaped = "red\\x1b[31m\\n2026-01-01 00:00:00,000 ERROR forged.txt"
        await daemon.until(lambda: daemon.lines("skipping camera=nvr", escaped), "escaped name")
        # The camera still works after all of it.
        later = await write_recording(folder / "later.mp4", "later", how="in-place")
        await daemon.until(states(daemon, {"later.mp4": "done"}), "later.mp4 done")
        clips = await daemon.clips()

    assert sorted(Path(c["path"]).name for c in clips) == ["after.mp4", "later.mp4"]
    assert accepted(emulator) == Counter({after: 1, later: 1})
    log = daemon.log()
    assert "\x1b" not in log and not [
        line for line in log.splitlines() if "ERROR forged" in line[:40]
    ]

    assert secret not in accepted(emulator)
    assert len(daemon.lines("ignoring camera=nvr", "front-0001.mp4")) == 1


@pytest.mark.parametrize("poll", [False, True], ids=["inotify", "polling"])
async def test_a_folder_missing_at_start_then_deleted_and_made_again_is_watched_each_time(
    emulator: Emulator, tmp_path: Path, poll: bool
):
    folder = tmp_path / "nvr"  # not there yet: a share mounted after edged starts
    options = "    poll: 0.3s\n" if poll else ""
    config = folder_config(tmp_path, emulator.url, folder, options)
    emulator.options.api_key = None
    async with running(config, serving=False) as daemon:
        await daemon.until(lambda: daemon.lines("folder missing", str(folder)), "a report")
        await asyncio.to_thread(folder.mkdir)
        first = await write_recording(folder / "first.mp4", "first")
        await daemon.until(states(daemon, {"first.mp4": "done"}), "first.mp4 done")

        await asyncio.to_thread(shutil.rmtree, folder)  # retention, or an operator
        await daemon.until(lambda: daemon.lines("folder gone", str(folder)), "a report")
        await asyncio.to_thread(folder.mkdir)
        second = await write_recording(folder / "day" / "second.mp4", "second")
        await daemon.until(states(daemon, {"second.mp4": "done"}), "second.mp4 in the new folder")

        # Replaced at once (deleted and made again between two looks): still followed.
        await asyncio.to_thread(shutil.rmtree, folder)
        await asyncio.to_thread(folder.mkdir)
        third = await write_recording(folder / "third.mp4", "third", how="in-place")
        await daemon.until(states(daemon, {"third.mp4": "done"}), "third.mp4 in the third folder")

        # A day folder written elsewhere and moved in whole.
        export = tmp_path / "export" / "2024-05-01"
        moved = await write_recording(export / "moved.mp4", "moved")
        await asyncio.to_thread(export.rename, folder / "2024-05-01")
        await daemon.until(states(daemon, {"moved.mp4": "done"}), "the moved-in folder's clip")

    assert accepted(emulator) == Counter({first: 1, second: 1, third: 1, moved: 1})
    assert len(daemon.lines("folder missing")) == 1


# ---- many folder cameras, and a watch that cannot be set ---------------------------------------

FOLDER_CAMERAS = int(os.environ.get("EDGED_FOLDER_CAMERAS", "500"))


def inotify_instances(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd) == "anon_inode:inotify"
    return count


async def test_five_hundred_folder_cameras_share_one_inotify_instance_and_each_is_watched(
    emulator: Emulator, tmp_path: Path
):
    """More folder cameras than fs.inotify.max_user_instances (128): one watchdog observer,
    one inotify instance for all of them; a recording written into any one is queued."""
    root = tmp_path / "nvr"
    cameras = "cameras:\n"
    for index in range(FOLDER_CAMERAS):
        folder = root / f"site{index // 50}" / f"cam{index:03d}"
        (folder / "2024-05-01").mkdir(parents=True)
        cameras += f"  - {{name: cam{index:03d}, folder: {folder}, settle: 1s, since: 1h}}\n"
    config = write_config(tmp_path, emulator.url, api_key=RIGHT_KEY, extra=cameras)
    emulator.options.api_key = None
    async with running(config, serving=False) as daemon:

        def all_watching() -> bool:
            return len(daemon.lines("catch-up camera=cam")) >= FOLDER_CAMERAS

        await daemon.until(all_watching, f"{FOLDER_CAMERAS} cameras watching", timeout_s=120)
        assert inotify_instances(daemon.pid) == 1
        for index in (0, FOLDER_CAMERAS // 2, FOLDER_CAMERAS - 1):
            name = f"cam{index:03d}"
            folder = root / f"site{index // 50}" / name / "2024-05-01"
            await write_recording(folder / f"{name}-0001.mp4", name)

        expected = sorted(f"cam{i:03d}" for i in (0, FOLDER_CAMERAS // 2, FOLDER_CAMERAS - 1))

        async def queued() -> bool:
            return sorted(c["camera"] for c in await daemon.clips()) == expected

        await daemon.until(queued, "the recordings queued", timeout_s=60)
        peak_mb = daemon.rss_kib() / 1024
    assert not daemon.lines("cannot watch")
    print(f"\n{FOLDER_CAMERAS} folder cameras: one inotify instance, peak RSS {peak_mb:.0f} MB")


@pytest.mark.skipif(
    os.geteuid() == 0 and not shutil.which("setpriv"),
    reason="as root, needs setpriv (util-linux) to run edged as an unprivileged user",
)
async def test_a_folder_that_cannot_be_watched_is_polled_and_the_other_cameras_run_on(
    emulator: Emulator, shared_dir: Path
):
    """A camera folder edged's user may not read gets no inotify watch (inotify would take it
    and never report an event): that camera is polled, with one error line, its recordings
    are queued once the folder is made readable, and edged and the other cameras run on."""
    user = None
    state = shared_dir / "state"
    state.mkdir()
    if os.geteuid() == 0:
        nobody = pwd.getpwnam(UNPRIVILEGED)
        user = UNPRIVILEGED
        os.chown(state, nobody.pw_uid, nobody.pw_gid)
    locked, open_ = shared_dir / "locked", shared_dir / "open"
    for folder in (locked, open_):
        folder.mkdir()
    locked.chmod(0o000)
    cameras = (
        f"cameras:\n  - {{name: locked, folder: {locked}, settle: 1s, since: 1h}}\n"
        f"  - {{name: open, folder: {open_}, settle: 1s, since: 1h}}\n"
    )
    config = write_config(shared_dir, emulator.url, api_key=RIGHT_KEY, extra=cameras)
    config.chmod(0o644)
    emulator.options.api_key = None
    async with running(config, serving=False, user=user) as daemon:
        await daemon.until(lambda: daemon.lines("cannot watch camera=locked"), "an error line")
        sent = await write_recording(open_ / "open-0001.mp4", "open")
        await daemon.until(states(daemon, {"open-0001.mp4": "done"}), "the other camera's clip")
        await asyncio.to_thread(locked.chmod, 0o755)  # the operator fixes the permissions
        late = await write_recording(locked / "locked-0001.mp4", "locked")
        await daemon.until(states(daemon, {"locked-0001.mp4": "done"}), "the polled camera's clip")
    [line] = daemon.lines("cannot watch camera=locked")
    assert "polling it every" in line and "ERROR" in line, line
    assert accepted(emulator) == Counter({sent: 1, late: 1})


# ---- a big archive at start ----------------------------------------------------------------

CATCH_UP_FILES = int(os.environ.get("EDGED_CATCHUP_FILES", "2000"))


def _archive(folder: Path, count: int, data: bytes) -> None:
    """Blocking: `count` recordings under day/hour folders, one every 10 s of the past."""
    now = time.time() - 60
    for index in range(count):
        mtime = now - index * 10
        stamp = time.gmtime(mtime)
        path = folder / time.strftime("%Y-%m-%d/%H/%M.%S.mp4", stamp)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (mtime, mtime))


async def test_thousands_of_recordings_at_start_are_each_queued_once(
    emulator: Emulator, tmp_path: Path
):
    folder = tmp_path / "nvr"
    sample = tmp_path / "scratch" / "sample.mp4"
    await asyncio.to_thread(make_clip, sample, seconds=1, width=64, height=48, fps=5)
    await asyncio.to_thread(_archive, folder, CATCH_UP_FILES, sample.read_bytes())
    config = folder_config(tmp_path, emulator.url, folder, "")
    config.write_text(config.read_text().replace("since: 1h", "since: 30d"))
    emulator.options.api_key = RIGHT_KEY  # uploads pause at once: the figure is the catch-up's
    started = time.monotonic()
    # Killed at the end: how edged stops is not at stake here, and uploads paused by a
    # refused key would hold a graceful stop for its whole grace period.
    async with running(config, serving=False, stop=signal.SIGKILL) as daemon:

        async def all_queued() -> bool:
            return len(await daemon.clips()) >= CATCH_UP_FILES

        await daemon.until(all_queued, f"{CATCH_UP_FILES} clips", timeout_s=120)
        elapsed_s = time.monotonic() - started
        peak_mb = daemon.rss_kib() / 1024
        clips = await daemon.clips()

    paths = Counter(c["path"] for c in clips)
    assert len(paths) == CATCH_UP_FILES and set(paths.values()) == {1}
    assert all(c["state"] == "queued" for c in clips)
    print(
        f"\ncatch-up: {CATCH_UP_FILES} recordings queued {elapsed_s:.1f}s after start"
        f" ({CATCH_UP_FILES / elapsed_s:.0f}/s), peak RSS {peak_mb:.0f} MB"
    )

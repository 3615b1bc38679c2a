"""The watches of folder cameras: one watchdog observer, so one inotify instance, for every
folder camera of the process, or a polling observer where inotify cannot serve.

Each inotify observer is an inotify instance, and Linux allows 128 per user by default
(`fs.inotify.max_user_instances`): an observer per camera stopped edged at the 129th folder
camera. All cameras share `SharedObserver.default()` instead; each camera's tree is one watch
of it (one inotify watch per folder in the tree, counted against `fs.inotify.max_user_watches`).
A camera whose watch cannot be set (that limit reached, a filesystem without inotify) polls
its folder instead; the others are not affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import Counter
from collections.abc import Iterator
from enum import Enum
from typing import ClassVar

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserverVFS


class FolderEvent(Enum):
    """What a watch reports about a path in a camera's folder."""

    CLOSED = "closed"  # a file written and closed, or moved in: it may be complete
    CHANGED = "changed"  # a file created or written to: not complete yet
    TREE = "tree"  # a folder moved in: its files were never reported one by one
    GONE = "gone"  # the camera's folder itself was deleted


#: What the loop is handed: the event and the path it is about.
Change = tuple[FolderEvent, str]


class Forwarder(FileSystemEventHandler):
    """Runs on watchdog's thread: hands (event, path) to the loop, nothing else."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Change], root: str):
        self._loop = loop
        self._queue = queue
        self._root = root

    def _put(self, item: Change) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: edged is stopping
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            # The watched folder itself deleted: the watch ends with it (a folder made again
            # at once may even get the same inode, so this event is the only sign).
            if event.event_type == "deleted" and os.fsdecode(event.src_path) == self._root:
                self._put((FolderEvent.GONE, self._root))
            elif event.event_type == "moved":
                # A folder moved in, or (polling matches inodes, which get reused) a new
                # file that looks like a folder moved there: see what is there now.
                dest = os.fsdecode(event.dest_path)
                if dest.startswith(self._root + os.sep):
                    self._put((FolderEvent.TREE, dest))
            return
        if event.event_type == "closed":
            self._put((FolderEvent.CLOSED, os.fsdecode(event.src_path)))
        elif event.event_type == "moved":
            self._put((FolderEvent.CLOSED, os.fsdecode(event.dest_path)))
        elif event.event_type in ("created", "modified"):
            self._put((FolderEvent.CHANGED, os.fsdecode(event.src_path)))


class SharedObserver:
    """One started inotify observer for many watches; blocking methods (run them in a
    thread). Started with its first watch, stopped with its last."""

    _default: ClassVar[SharedObserver | None] = None
    _default_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._observer: BaseObserver | None = None
        self._users: Counter[ObservedWatch] = Counter()

    @classmethod
    def default(cls) -> SharedObserver:
        """The process's observer, shared by every folder camera."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    def watch(self, handler: FileSystemEventHandler, path: str) -> ObservedWatch:
        """Watch the tree at `path` for `handler`. OSError: the watch could not be set (the
        inotify watch limit, a filesystem without inotify); nothing is left behind then."""
        with self._lock:
            if self._observer is None:
                observer = Observer()
                observer.start()
                self._observer = observer
            try:
                watch = self._observer.schedule(handler, path, recursive=True)
            except OSError:
                self._stop_if_unused()
                raise
            self._users[watch] += 1
            return watch

    def unwatch(self, handler: FileSystemEventHandler, watch: ObservedWatch) -> None:
        with self._lock:
            observer = self._observer
            if observer is None or not self._users[watch]:
                return
            self._users[watch] -= 1
            if self._users[watch]:  # another camera on the same folder keeps it
                observer.remove_handler_for_watch(handler, watch)
            else:
                del self._users[watch]
                observer.unschedule(watch)
            self._stop_if_unused()

    @property
    def watches(self) -> int:
        with self._lock:
            return sum(self._users.values())

    def _stop_if_unused(self) -> None:
        if self._users or self._observer is None:
            return
        observer, self._observer = self._observer, None
        observer.stop()
        observer.join(5)


def _listing(path: str | None) -> Iterator[os.DirEntry[str]]:
    """A folder's entries; none while edged's user may not list it (it is polled until it
    may: the files then appear as new)."""
    try:
        with os.scandir(path) as entries:
            return iter(list(entries))
    except PermissionError:
        return iter(())


class PolledWatch:
    """A folder polled on a thread of its own: network shares (`poll:`), and the fallback of a
    camera whose inotify watch cannot be set. Blocking methods."""

    def __init__(self, interval_s: float) -> None:
        # lstat: a symlink to a folder is not walked into, or a link back up the tree (a
        # loop) would make each poll recurse without end.
        self._observer = PollingObserverVFS(os.lstat, _listing, polling_interval=interval_s)

    def watch(self, handler: FileSystemEventHandler, path: str) -> None:
        self._observer.schedule(handler, path, recursive=True)
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(5)

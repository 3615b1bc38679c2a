"""Where alert snapshots live, how long, and the signed links that serve them.

Every snapshot is `storage.dir/snapshots/<camera>/<alert_id>.jpg`: edged never writes into an
NVR folder, and its own RTSP clips may be deleted as soon as they are uploaded, so the
pictures are kept in edged's own storage, one folder per camera, for
`alerts.snapshot_retention`. All methods are blocking; the analyzer and the sinks call them
in threads. `Snapshot`, the reference an alert's body holds, is in `edged/alert_body.py`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from edged.alert_body import Snapshot
from edged.clip import Clip
from edged.ledger.store import Ledger
from edged.media.frames import SnapshotError, clip_picture
from edged.names import safe_name

log = logging.getLogger(__name__)

SNAPSHOT_DIR = "snapshots"
_FILE = re.compile(r"[A-Za-z0-9_.-]{1,100}/al_[0-9a-f]{24}\.jpg")
_KEY_META = "snapshot_url_key"


def snapshot_key(ledger: Ledger) -> bytes:
    """The secret that signs snapshot links, made once per ledger; blocking."""
    return bytes.fromhex(ledger.meta.get_or_create(_KEY_META, lambda: secrets.token_hex(32)))


class SnapshotStore:
    def __init__(
        self,
        root: Path,
        retention_s: float,
        *,
        key: bytes = b"",
        public_url: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.retention_s = retention_s
        self._key = key
        self._public_url = public_url.rstrip("/")
        self._clock = clock

    @property
    def enabled(self) -> bool:
        """snapshot_retention 0 turns pictures off."""
        return self.retention_s > 0

    def take(self, clip: Clip, alert_id: str, at_s: float | None) -> Snapshot | None:
        """Decode, scale and store the frame at `at_s` (None: the middle). On failure the
        alert goes out without a picture, so this logs and returns None."""
        if not self.enabled:
            return None
        file = f"{safe_name(clip.camera)}/{alert_id}.jpg"
        try:
            picture = clip_picture(clip.path, at_s)
            self._write(self.root / file, picture.jpeg)
        except SnapshotError as exc:
            log.warning(
                "no snapshot camera=%s clip=%s alert_id=%s: %s", clip.camera, clip.id, alert_id, exc
            )
            return None
        except OSError as exc:
            log.warning(
                "cannot store snapshot camera=%s clip=%s alert_id=%s: %s",
                clip.camera,
                clip.id,
                alert_id,
                exc.strerror or exc,
            )
            return None
        return Snapshot(file, picture.width, picture.height, picture.at_s)

    def path(self, file: str) -> Path | None:
        """The stored file a payload names; None for a name that is not a snapshot's."""
        return self.root / file if _FILE.fullmatch(file) else None

    def read(self, file: str) -> bytes | None:
        path = self.path(file)
        try:
            return path.read_bytes() if path is not None else None
        except OSError:  # pruned after retention, or never written
            return None

    def url(self, file: str, now: float) -> tuple[str, float]:
        """A link on the callback listener that works until the snapshot is pruned."""
        expires = int(now + self.retention_s)
        query = urlencode({"expires": expires, "sig": self._sign(file, expires)})
        return f"{self._public_url}/{SNAPSHOT_DIR}/{file}?{query}", float(expires)

    def verify(self, file: str, expires: str, signature: str, now: float) -> Path | None:
        """The file a signed link names, if the signature is right and not expired."""
        path = self.path(file)
        if path is None or not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
            return None
        expected = self._sign(file, int(expires))
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return None
        return path if int(expires) >= now and path.is_file() else None

    def prune(self, now: float) -> int:
        """Delete snapshots older than the retention; returns how many."""
        removed = 0
        for path in self.root.glob("*/*"):
            try:
                if path.is_file() and now - path.stat().st_mtime > self.retention_s:
                    path.unlink()
                    removed += 1
            except OSError as exc:  # gone meanwhile, or not ours to remove: leave it
                log.debug("snapshot not pruned %s: %s", path, exc)
        return removed

    def _sign(self, file: str, expires: int) -> str:
        message = f"{file}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def _write(self, path: Path, data: bytes) -> None:
        # Written aside and renamed, so a reader never sees half a picture.
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.part")
        with partial.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        partial.replace(path)

"""The identity of an alert: one per (clip, person), the same for every sink and every try."""

from __future__ import annotations

import hashlib


def alert_id_for(install_id: str, clip_id: int, person: str) -> str:
    """Stable across retries, restarts and sinks: a receiver drops a repeat by this id."""
    digest = hashlib.sha256(f"{install_id}:{clip_id}:{person}".encode()).hexdigest()
    return f"al_{digest[:24]}"

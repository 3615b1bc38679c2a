"""Secrets against a real `edged run`: RTSP passwords with a space, `/` or `@`, percent-encoded
ones and a short API key never reach the log, `check-config`, `edged status` or the ledger's
outage reasons; a crash's traceback goes through edged's (redacting, JSON) formatter."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from edged.emulator import Emulator
from tests.support.edged import run_edged, write_config
from tests.support.edged_process import running
from tests.support.environment import free_port

#: Each camera's password and the spellings of it that must never be shown.
PASSWORDS = {
    "spaced": ("pa ss/w@rd", ["pa ss", "ss/w", "w@rd"]),
    "encoded": ("p%40ss%2Fx", ["p%40ss", "p@ss", "ss/x", "ss%2Fx"]),
}
API_KEY = "k9"  # short: redacted all the same


def _cameras() -> str:
    closed = free_port()  # nothing listens there: each camera goes down at once
    return "cameras:\n" + "".join(
        f'  - name: {name}\n    rtsp: "rtsp://admin:{password}@127.0.0.1:{closed}/{name}"\n'
        for name, (password, _) in PASSWORDS.items()
    )


def _leaks(text: str) -> list[str]:
    shown = [form for _, forms in PASSWORDS.values() for form in forms if form in text]
    return shown + ([API_KEY] if API_KEY in text else [])


async def test_rtsp_passwords_and_a_short_key_never_reach_logs_status_or_the_ledger(
    emulator: Emulator, tmp_path: Path
):
    config = write_config(tmp_path, emulator.url, api_key=API_KEY, extra=_cameras())
    async with running(config, serving=False, options=("--log-level", "DEBUG")) as edged:

        async def both_down() -> bool:
            try:
                reasons = await edged.rows("SELECT reason FROM outages")
            except sqlite3.Error:
                return False
            return len(reasons) >= 2

        await edged.until(both_down, "both cameras' outages", timeout_s=30)
    logged = edged.log()
    assert "camera down camera=spaced" in logged and "camera down camera=encoded" in logged
    reasons = [row["reason"] for row in await edged.rows("SELECT reason FROM outages")]
    code, status, status_err = await run_edged("status", "-c", str(config))
    assert code == 0, status_err
    code, checked, checked_err = await run_edged("check-config", "-c", str(config))
    assert code == 0, checked_err
    assert "rtsp://admin:***@127.0.0.1" in checked
    for where, text in [
        ("log", logged),
        ("outage reasons", "\n".join(reasons)),
        ("status", status + status_err),
        ("check-config", checked + checked_err),
    ]:
        assert _leaks(text) == [], f"{where}: {text[-1500:]}"


async def test_a_crash_traceback_goes_through_the_redacting_json_formatter(tmp_path: Path):
    secret = "sk-crash-secret-42"
    blocker = tmp_path / secret  # a file where storage.dir needs a folder: the ledger fails
    blocker.write_text("")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"api:\n  api_key: {secret}\n  base_url: http://127.0.0.1:9\n"
        f"callback:\n  listen: 127.0.0.1:{free_port()}\n"
        f"storage:\n  dir: {blocker / 'state'}\nmetrics:\n  listen: null\n"
    )
    config.chmod(0o600)
    code, out, err = await run_edged("--log-format", "json", "run", "-c", str(config))
    assert code != 0
    lines = [json.loads(line) for line in err.splitlines()]  # every line is JSON
    (crash,) = [line for line in lines if line["level"] == "critical"]
    assert "NotADirectoryError" in crash["exception"] or "FileExistsError" in crash["exception"]
    assert secret not in err + out

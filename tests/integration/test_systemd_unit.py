"""The shipped unit file passes `systemd-analyze verify` and keeps its hardening."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.environment import require_program

UNIT = Path(__file__).parents[2] / "systemd" / "edged.service"


def test_unit_verifies_clean(tmp_path: Path) -> None:
    analyze = require_program("systemd-analyze")  # skipped without it; failed under CI=true
    edged = Path(sys.executable).with_name("edged")
    text = UNIT.read_text().replace("/usr/local/bin/edged", str(edged))
    unit = tmp_path / "edged.service"
    unit.write_text(text)
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_unit_declares_notify_watchdog_and_hardening() -> None:
    lines = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in UNIT.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert lines["Type"] == "notify" and lines["WatchdogSec"] and lines["Restart"] == "on-failure"
    assert lines["ExecReload"].endswith("-HUP $MAINPID")
    assert lines["ProtectSystem"] == "strict" and lines["NoNewPrivileges"] == "yes"
    assert lines["CapabilityBoundingSet"] == "" and "@system-service" in UNIT.read_text()
    assert lines["StateDirectory"] == "edged" and lines["LoadCredential"].startswith("api_key:")


def test_unit_allows_the_listener_and_cameras_their_file_descriptors() -> None:
    """The default soft limit (1024) is what a listener under attack used to exhaust."""
    from edged.config.model import CallbackConfig

    limit = next(
        int(line.split("=", 1)[1])
        for line in UNIT.read_text().splitlines()
        if line.startswith("LimitNOFILE=")
    )
    assert limit >= CallbackConfig().max_connections + 4 * 500 + 100

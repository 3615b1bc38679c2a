"""What the folder cameras ask of inotify against the kernel's limits, as check-config says."""

from __future__ import annotations

from pathlib import Path

import pytest

from edged.config.model import parse_config
from edged.sources.inotify_limits import PROC, inotify_report
from tests.support.edged import run_edged


def _tree(tmp_path: Path) -> str:
    for sub in ("a/2024-05-01/10", "a/2024-05-01/11", "b"):
        (tmp_path / "nvr" / sub).mkdir(parents=True)
    (tmp_path / "polled").mkdir()
    (tmp_path / "nvr" / "a" / "loop").symlink_to(tmp_path / "nvr")  # not followed by inotify
    return (
        "api: {api_key: key-1}\n"
        f"storage: {{dir: {tmp_path / 'state'}}}\n"
        "cameras:\n"
        f"  - {{name: a, folder: {tmp_path / 'nvr' / 'a'}}}\n"
        f"  - {{name: b, folder: {tmp_path / 'nvr' / 'b'}}}\n"
        f"  - {{name: p, folder: {tmp_path / 'polled'}, poll: 10s}}\n"
    )


def test_more_watches_than_the_limit_is_warned_about(tmp_path: Path) -> None:
    config = parse_config(_tree(tmp_path))
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "max_user_watches").write_text("4\n")
    (proc / "max_user_instances").write_text("128\n")
    report = inotify_report(config, proc)
    assert (report.cameras, report.watches) == (2, 5)  # a, a/2024-05-01, its 10 and 11; b
    assert report.limits == {
        "max_user_watches": 4,
        "max_user_instances": 128,
        "max_queued_events": None,
    }
    assert report.warning is not None and "need 5 inotify watches" in report.warning
    assert "max_user_watches (4)" in report.warning
    (proc / "max_user_watches").write_text("5\n")
    assert inotify_report(config, proc).warning is None


@pytest.mark.skipif(not (PROC / "max_user_watches").exists(), reason="no inotify limits here")
async def test_check_config_reports_the_inotify_limits_it_found(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(_tree(tmp_path))
    path.chmod(0o600)
    code, out, err = await run_edged("check-config", "-c", str(path))
    assert code == 0, err
    watches = (PROC / "max_user_watches").read_text().strip()
    instances = (PROC / "max_user_instances").read_text().strip()
    assert "# inotify: 2 folder cameras watch 5 folders" in out
    assert f"fs.inotify.max_user_watches={watches}" in out
    assert f"fs.inotify.max_user_instances={instances}" in out

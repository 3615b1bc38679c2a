"""The README's first command: `edged demo` runs the whole pipeline against the emulator and
prints each alert once, with a signature the Standard Webhooks library accepts."""

from __future__ import annotations

import re

from tests.support.edged import run_edged


async def test_edged_demo_delivers_each_persons_alert_once_signed_and_exits_0():
    code, out, err = await run_edged("demo", timeout_s=100)
    assert code == 0, f"{out}\n{err}"
    alerts = re.findall(r"ALERT (\w+) on front-door .*signature (\w+)\)", out)
    assert sorted(alerts) == [("Alice", "valid"), ("Bob", "valid")], out
    assert "INVALID" not in out
    done = re.findall(r"clip \d+ ([\w-]+\.mp4): done", out)
    assert sorted(done) == ["alice-at-the-door.mp4", "bob-with-a-parcel.mp4", "empty-yard.mp4"]
    assert out.rstrip().endswith("3 clips done, 2 alerts delivered."), out
    assert "Traceback" not in err and "ERROR" not in err, err

"""A person image edged's user may not read is a config error naming the key, the line and
the file, from `edged check-config` run as a process of its own. Root reads any file
whatever its mode, so as root (CI runs as root) edged runs as an unprivileged user, as the
NVR battery does; the image is readable by that user first, to show the refusal comes from
the permission alone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.edged import EDGED
from tests.support.environment import require_program
from tests.support.images import write_jpeg

#: As root, edged runs as this user instead (every Debian has it).
UNPRIVILEGED = "nobody"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder an unprivileged user can reach (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="edged-person-image-"))
    path.chmod(0o755)
    yield path
    for inner in path.rglob("*"):
        with contextlib.suppress(OSError):
            inner.chmod(0o755)
    shutil.rmtree(path, ignore_errors=True)


def as_edged_user() -> list[str]:
    """The command prefix that runs edged as a user the file mode applies to."""
    if os.geteuid() != 0:
        return []
    setpriv = require_program("setpriv")  # util-linux; fails under CI=true when missing
    gid = pwd.getpwnam(UNPRIVILEGED).pw_gid
    return [setpriv, f"--reuid={UNPRIVILEGED}", f"--regid={gid}", "--clear-groups"]


async def test_an_unreadable_person_image_is_a_config_error_with_its_key_and_line(
    shared_dir: Path,
):
    image = write_jpeg(shared_dir / "alice.jpg")
    image.chmod(0o644)
    config = shared_dir / "config.yaml"
    config.write_text(
        "api:\n  api_key: ${EDGED_TEST_KEY}\n"
        "persons:\n  - name: Alice\n    image: alice.jpg\n"
        f"storage:\n  dir: {shared_dir / 'state'}\n"
    )
    config.chmod(0o644)
    prefix = [*as_edged_user(), *EDGED]
    env = {"EDGED_TEST_KEY": "k"}

    code, out, err = await run_edged_as(prefix, "check-config", "-c", str(config), env=env)
    assert code == 0, err  # readable: the config is good, so the mode alone decides below
    assert "Alice" in out

    image.chmod(0o000)
    code, out, err = await run_edged_as(prefix, "check-config", "-c", str(config), env=env)
    assert code != 0
    expected = f"persons[0].image (line 5): cannot read image {image}: Permission denied"
    assert expected in err, err
    assert "Traceback" not in err


async def run_edged_as(prefix: list[str], *args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """`edged ARGS` behind `prefix` (setpriv as root), in its own process."""
    process = await asyncio.create_subprocess_exec(
        *prefix,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()

"""The metrics README lists, scraped from a live `edged run`'s /metrics and read with
prometheus_client's own text parser (and `promtool check metrics`): each is
there, and each moves as its fault happens. A folder clip is cut off mid-upload by kill -9
(interrupted), refused once with 503 (an API error), its first result never comes (expired
and sent again: a duplicate); an RTSP camera records (edged's own bytes on disk), then its
server dies (camera down, outage seconds growing); the restarted edged finishes every clip,
and what it reports agrees with what the emulator saw."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from edged.emulator import Emulator
from edged.service.metrics import STEPS
from tests.support.edged_process import EdgedProcess
from tests.support.environment import free_port, in_ci
from tests.support.rtsp import ServerFactory, camera_yaml

#: Every metric README.md lists for /metrics, by the name a scrape shows.
README_METRICS = (
    "edged_clips",
    "edged_queue_oldest_age_seconds",
    "edged_upload_bytes_total",
    "edged_uploads_accepted_total",
    "edged_duplicate_uploads_total",
    "edged_uploads_interrupted_total",
    "edged_api_errors_total",
    "edged_clip_step_seconds",
    "edged_alerts",
    "edged_camera_down",
    "edged_camera_outage_seconds_total",
    "edged_storage_bytes",
    "edged_tokens_today",
    "edged_recorded_seconds_today",
    "edged_uploaded_seconds_today",
)
REFRESH_S = 5.0  # edged reads the ledger into /metrics this often

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def test_the_readme_lists_these_metrics():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    listed = readme.split("`GET /metrics` (Prometheus)")[1].split("- **Latency")[0]
    for name in README_METRICS:
        assert f"`{name}" in listed, name


class Scraper:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.text = ""
        self.families: set[str] = set()  # as exposed: a counter's name with its _total

    async def __call__(self) -> Samples:
        """One scrape, parsed by prometheus_client: (sample name, labels) → value."""
        async with aiohttp.ClientSession() as http, http.get(self.url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            self.text = await response.text()
        samples: Samples = {}
        self.families.clear()
        for family in text_string_to_metric_families(self.text):
            suffix = "_total" if family.type == "counter" else ""
            self.families.add(family.name + suffix)
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return samples

    async def until(
        self,
        check: Callable[[Samples], bool],
        daemon: EdgedProcess,
        *,
        what: str,
        timeout_s: float = 30,
    ) -> Samples:
        """Scrape until `check` holds for a scrape (a refresh or two of edged's)."""
        seen: list[Samples] = []

        async def probe() -> bool:
            try:
                seen[:] = [await self()]
            except aiohttp.ClientError:
                return False  # not listening yet
            return check(seen[0])

        await daemon.until(probe, what, timeout_s)
        return seen[0]


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def config_text(tmp_path: Path, api_url: str, metrics_port: int, gate_url: str) -> str:
    port = free_port()
    return (
        f"api:\n  base_url: {api_url}\n  api_key: test-key\n  max_attempts: 5\n"
        f"callback:\n  listen: 127.0.0.1:{port}\n  public_url: http://127.0.0.1:{port}\n"
        "  result_timeout: 2s\n"
        "persons:\n  - name: Alice\n    url: https://example.com/alice.jpg\n"
        "cameras:\n"
        f"  - name: yard\n    folder: {tmp_path / 'nvr'}\n    pattern: '*.mp4'\n    since: 1d\n"
        + camera_yaml("gate", gate_url, stall_timeout="2s")
        + f"storage:\n  dir: {tmp_path / 'state'}\n  min_free: 0\n"
        "alerts:\n  cooldown: 0s\n  snapshot_retention: 0s\n  sinks:\n    - type: log\n"
        f"metrics:\n  listen: 127.0.0.1:{metrics_port}\n"
    )


def promtool_check(text: str) -> None:
    """Blocking: `promtool check metrics` (Debian's prometheus package) on a scrape: the
    exposition format and Prometheus' naming rules, as Prometheus itself judges them.
    Without promtool only the parser judges, except under CI=true, where it must be there."""
    promtool = shutil.which("promtool")
    if promtool is None:
        assert not in_ci(), "promtool is not installed (.ci/apt-packages.txt: prometheus)"
        return
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_every_readme_metric_is_live_and_moves(
    emulator: Emulator, rtsp_server: ServerFactory, clip_factory, edged_run, tmp_path: Path
):
    server = await rtsp_server()
    metrics_port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(config_text(tmp_path, emulator.url, metrics_port, server.url))
    scrape = Scraper(metrics_port)
    emulator.options.latency_s = 600.0  # the first run's upload never gets an answer
    alice = await clip_factory("alice.mp4", title="Alice at the door", folder=tmp_path / "nvr")

    # ---- the first run: an upload in flight, a camera recording; then kill -9 -------------
    first = await edged_run(config)
    await scrape.until(lambda _: True, first, what="/metrics to answer")
    assert set(README_METRICS) <= scrape.families, set(README_METRICS) - scrape.families
    await asyncio.to_thread(promtool_check, scrape.text)
    before = await scrape.until(
        lambda s: (
            (value(s, "edged_clips", camera="yard", state="uploading") == 1)
            and (value(s, "edged_storage_bytes") or 0) > 0
            and (value(s, "edged_queue_oldest_age_seconds") or 0) > 0
        ),
        first,
        what="the clip uploading, the camera's clip on disk, the queue aging",
    )
    assert value(before, "edged_camera_down", camera="gate") in (None, 0.0)
    later = await scrape.until(
        lambda s: (
            (value(s, "edged_queue_oldest_age_seconds") or 0)
            > (value(before, "edged_queue_oldest_age_seconds") or 0)
        ),
        first,
        what="the queue's oldest clip older at the next refresh",
        timeout_s=3 * REFRESH_S,
    )
    grown = (value(later, "edged_storage_bytes") or 0) - (value(before, "edged_storage_bytes") or 0)
    assert grown > 0, "the camera's clip in progress grows on disk"
    assert value(later, "edged_uploads_interrupted_total") == 0
    assert value(later, "edged_uploads_accepted_total") == 0
    code = await first.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL
    sql = "SELECT COUNT(*) AS n FROM clips WHERE state='uploading'"
    cut = (await first.rows(sql))[0]["n"]
    assert cut >= 1  # the folder clip, and a camera clip if one was finished by then
    await asyncio.to_thread(server.kill)

    # ---- the second run: 503 once, a lost result, then everything done --------------------
    emulator.options.update({"latency_s": 0.0, "fail_next": [503], "callback_faults": ["drop"]})
    down_since = time.time()
    second = await edged_run(config)
    down = await scrape.until(
        lambda s: value(s, "edged_camera_down", camera="gate") == 1,
        second,
        what="the camera down",
    )
    outage = value(down, "edged_camera_outage_seconds_total", camera="gate") or 0.0
    await scrape.until(
        lambda s: (value(s, "edged_camera_outage_seconds_total", camera="gate") or 0) > outage,
        second,
        what="the outage's seconds growing",
        timeout_s=3 * REFRESH_S,
    )

    async def all_done() -> bool:
        found = await second.rows("SELECT state FROM clips")
        return bool(found) and all(r["state"] == "done" for r in found)

    await second.until(all_done, "every clip done", timeout_s=60)
    clips = await second.rows("SELECT id, camera, size FROM clips")
    results = await second.rows("SELECT tokens_total FROM results")
    done = len(clips)
    assert done >= 2 and {c["camera"] for c in clips} == {"yard", "gate"}
    final = await scrape.until(
        lambda s: (
            value(s, "edged_queue_oldest_age_seconds") == 0
            and value(s, "edged_clip_step_seconds_count", step="callback_to_done") == done
        ),
        second,
        what="the finished clips in /metrics",
    )
    await asyncio.to_thread(promtool_check, scrape.text)
    code = await second.stop(signal.SIGTERM)
    err = second.log()
    assert code == 0, err

    # What edged reports agrees with what the emulator saw and the faults injected.
    accepted = [r for r in emulator.received if r.status == 200 and r.task_id]
    sizes = {
        str(r.req.get("callback")).split("/callbacks/")[1].split("/")[0]: r.file_size
        for r in accepted
    }
    assert value(final, "edged_uploads_accepted_total") == len(accepted) == done + 1
    assert value(final, "edged_duplicate_uploads_total") == 1  # the clip whose result was lost
    assert value(final, "edged_uploads_interrupted_total") == cut  # cut off by the kill
    assert value(final, "edged_upload_bytes_total") == sum(sizes.values())
    assert sum(sizes.values()) == sum(c["size"] for c in clips)
    assert value(final, "edged_api_errors_total", code="503") == 1
    assert [r.status for r in emulator.received].count(503) == 1
    assert value(final, "edged_clips", camera="yard", state="done") == 1
    assert value(final, "edged_clips", camera="gate", state="done") == done - 1
    assert value(final, "edged_alerts", sink="log", outcome="sent") == 1  # Alice, once
    tokens = sum(r["tokens_total"] or 0 for r in results)
    assert tokens > 0 and value(final, "edged_tokens_today") == tokens
    for step, _, _ in STEPS:
        assert value(final, "edged_clip_step_seconds_count", step=step) == done, step
    assert value(final, "edged_camera_down", camera="gate") == 1
    assert (value(final, "edged_camera_outage_seconds_total", camera="gate") or 0) <= (
        time.time() - down_since + REFRESH_S
    )
    assert alice.exists()

"""The public callback listener under random requests: no 5xx, no crash, and no ledger change
but for a correctly tokened callback. Real HTTP on a real socket; hypothesis picks the requests."""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path

import aiohttp
import yarl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edged.clip import Clip
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.media.snapshot_store import SnapshotStore
from edged.results.callback_server import CallbackServer
from edged.results.listener import CallbackApp
from edged.upload.persons import build_directory

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
SEGMENT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"),
    min_size=0,
    max_size=40,
)


def paths(clip: Clip) -> st.SearchStrategy[str]:
    near = st.sampled_from(
        [f"/callbacks/{clip.id}/", "/callbacks/", "/persons/person-token/", "/persons/", "/"]
    )
    random_paths = st.builds(lambda a, b: a + b, near, st.lists(SEGMENT, max_size=4).map("/".join))
    # Forged tokens of the shapes an attacker tries first, and ids that are not ASCII digits.
    forged = st.sampled_from(
        [
            f"/callbacks/{clip.id}/" + "%00" * 22,
            f"/callbacks/{clip.id}/" + "%20" * 22,
            f"/callbacks/{clip.id}/" + "%09" * 22,
            f"/callbacks/{clip.id}/abc",
            f"/callbacks/{clip.id}/" + (clip.callback_token or "")[:-1] + "%00",
            f"/callbacks/{clip.id + 1}/{clip.callback_token}",
            f"/callbacks/%C2%B2/{clip.callback_token}",
            f"/callbacks/%D9%A1/{clip.callback_token}",
            f"/callbacks/{clip.id}%00/{clip.callback_token}",
            "/snapshots/yard/x.jpg?expires=%C2%B2&sig=00",
            "/snapshots/yard/x.jpg?expires=1e999&sig=00",
        ]
    )
    # The clip's own callback URL, so bodies are judged too (not only paths).
    own = st.just(f"/callbacks/{clip.id}/{clip.callback_token}")
    return st.one_of(random_paths, forged, own)


# Random bytes and random JSON, none of which is a result: no text anywhere, no success code;
# and hostile JSON: deep nesting, numbers Python reads as infinite or NaN, lone surrogates.
HOSTILE = [
    b"[" * 50_000 + b"]" * 50_000,
    b'{"x": ' * 5_000 + b"1" + b"}" * 5_000,
    b"NaN",
    b"1e999",
    b'{"message": -Infinity, "token": {"total": NaN}}',
    b'"\\ud800"',
    b'{"\\udfff": "\\ud800", "message": "\\ud83d"}',
    b"\xff\xfe{}",
]
BODIES = st.one_of(
    st.binary(max_size=2048),
    st.sampled_from([b"1", b"[]", b"null", b'"x"', b"{}", b'{"message": "hi"}', *HOSTILE]),
    st.dictionaries(
        st.text(max_size=10),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=10,
        ),
        max_size=5,
    ).map(lambda d: json.dumps(d).encode()),
)
HEADERS = st.dictionaries(
    st.sampled_from(
        [
            "Content-Type",
            "Content-Length-X",
            "X-Forwarded-For",
            "Authorization",
            "Transfer-Encoding-X",
            "Cookie",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    max_size=3,
)


async def snapshot(db: AsyncLedger) -> list[list[tuple]]:
    """Every row of every table: what no request but the clip's own callback may change."""
    tables = await db.call(
        db.ledger.db.rows, "SELECT name FROM sqlite_master WHERE type='table' ORDER BY 1"
    )
    dumped = []
    for table in tables:
        rows = await db.call(db.ledger.db.rows, f"SELECT * FROM {table['name']}")
        dumped.append([tuple(row) for row in rows])
    return dumped


async def test_random_requests_never_5xx_and_never_touch_the_ledger(listener) -> None:
    url, db, clip = listener
    before = await snapshot(db)
    statuses: dict[int | None, int] = {}
    loop = asyncio.get_running_loop()

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(method=st.sampled_from(METHODS), path=paths(clip), body=BODIES, headers=HEADERS)
    def probe(method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        status = asyncio.run_coroutine_threadsafe(
            send(url, method, path, body, headers), loop
        ).result(30)
        statuses[status] = statuses.get(status, 0) + 1
        assert status is None or status < 500, (method, path, status)

    await asyncio.to_thread(probe)
    assert await snapshot(db) == before, "only a correctly tokened callback may change it"
    answered = sum(n for status, n in statuses.items() if status is not None)
    assert answered >= 150, statuses  # most requests reach the server and are answered
    print(f"statuses over {sum(statuses.values())} random requests: {statuses}")


async def send(
    url: str, method: str, path: str, body: bytes, headers: dict[str, str]
) -> int | None:
    """The status, or None when no answer came (the client refused to send the request)."""
    async with aiohttp.ClientSession() as http:
        try:
            async with http.request(
                method, yarl.URL(url + path, encoded=True), data=io.BytesIO(body), headers=headers
            ) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, ValueError):  # e.g. a control character in the path
            return None


async def test_many_idle_and_slow_connections_do_not_stop_the_listener(listener) -> None:
    url, db, clip = listener
    host, port = url.removeprefix("http://").split(":")
    # From four other addresses (each under its cap of 64): the callback comes from its own.
    idle = [
        await asyncio.open_connection(host, int(port), local_addr=(f"127.0.0.{2 + n % 4}", 0))
        for n in range(200)
    ]
    slow_reader, slow_writer = await asyncio.open_connection(host, int(port))
    slow_writer.write(
        f"POST /callbacks/{clip.id}/{clip.callback_token} HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{".encode()
    )
    await slow_writer.drain()
    try:
        async with aiohttp.ClientSession() as http:
            result = {"code": 0, "data": {"data": {"text": "ok"}}}
            response = await http.post(
                f"{url}/callbacks/{clip.id}/{clip.callback_token}", json=result
            )
            assert response.status == 200
    finally:
        for _, writer in [*idle, (slow_reader, slow_writer)]:
            writer.close()
    stored = await db.call(db.ledger.results.result, clip.id)
    assert stored is not None and stored.text == "ok"


async def test_picture_paths_serve_their_own_file_and_nothing_else(tmp_path: Path) -> None:
    """Person images and snapshots are the only files the public listener serves: a near miss
    of their links (other name, traversal, forged or expired signature) gets 404, never
    another file of the box."""
    image = tmp_path / "alice.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nalice")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "secret.txt").write_text("not for the internet")
    persons = build_directory((("Alice", None, image),), "http://x", "person-token")
    store = SnapshotStore(tmp_path / "snapshots", 3600, key=b"k" * 32, public_url="http://x")
    (tmp_path / "snapshots" / "yard").mkdir(parents=True)
    (tmp_path / "snapshots" / "yard" / "al_0123456789abcdef01234567.jpg").write_bytes(
        b"\xff\xd8jpeg"
    )
    link, _ = store.url("yard/al_0123456789abcdef01234567.jpg", time.time())
    good_snapshot = link.removeprefix("http://x")
    stale, _ = store.url("yard/al_0123456789abcdef01234567.jpg", time.time() - 7200)
    query = good_snapshot.split("?", 1)[1]
    near_misses = [
        "/persons/person-token/1.png",
        "/persons/person-tokex/0.png",
        "/persons/person-token/../alice.png",
        "/persons/person-token/%2e%2e%2falice.png",
        "/persons/person-token/..%2f..%2fstate%2fsecret.txt",
        "/persons//0.png",
        "/snapshots/yard/al_0123456789abcdef01234567.jpg",
        "/snapshots/yard/al_0123456789abcdef01234568.jpg?" + query,
        "/snapshots/yard/../../state/secret.txt?" + query,
        "/snapshots/..%2fstate/secret.txt?" + query,
        "/snapshots/yard/al_0123456789abcdef01234567.jpg?" + query.replace("sig=", "sig=0"),
        stale.removeprefix("http://x"),
        "/state/secret.txt",
        "/../state/secret.txt",
    ]
    db = AsyncLedger(Ledger(tmp_path / "state"))
    server = CallbackServer(CallbackApp(db, persons, snapshots=store), "127.0.0.1", 0)
    try:
        async with server, aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{server.port}"

            async def fetch(path: str) -> tuple[int, bytes]:
                async with http.get(yarl.URL(base + path, encoded=True)) as response:
                    return response.status, await response.read()

            assert await fetch("/persons/person-token/0.png") == (200, image.read_bytes())
            assert await fetch(good_snapshot) == (200, b"\xff\xd8jpeg")
            for path in near_misses:
                status, body = await fetch(path)
                assert status == 404, path
                assert b"not for the internet" not in body and b"alice" not in body
    finally:
        await db.aclose()

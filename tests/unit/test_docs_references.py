"""The tests docs/security.md and docs/reliability.md cite as proofs exist: a renamed or
deleted test must not leave a threat proved by nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
CITED = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?")


@pytest.mark.parametrize("doc", ["docs/security.md", "docs/reliability.md"])
def test_every_cited_test_exists(doc: str):
    text = (REPO / doc).read_text()
    cited = CITED.findall(text)
    assert cited, f"{doc} cites no test"
    missing = []
    for file, name in cited:
        path = REPO / file
        if not path.exists():
            missing.append(file)
        elif name and not re.search(rf"^(async )?def {name}\(", path.read_text(), re.M):
            missing.append(f"{file}::{name}")
    assert not missing, f"{doc} cites tests that do not exist: {missing}"


def test_every_threat_names_its_test():
    rows = [
        line
        for line in (REPO / "docs/security.md").read_text().splitlines()
        if line.startswith("| ") and not line.startswith(("| threat", "| who", "| phase"))
    ]
    threats = [row for row in rows if row.count("|") >= 4 and "---" not in row]
    assert len(threats) >= 30
    for row in threats:
        if row.startswith(("| anyone", "| the ", "| whatever", "| whoever", "| local")):
            continue  # the "who can reach what" table
        if row.startswith("| reference") or row.startswith("| 1,000"):
            continue  # the figures
        assert "tests/" in row or "bench/" in row, f"a threat without its test: {row[:80]}"

"""The worst time edged takes to read one result, over hostile texts at the cap.

    python bench/parse_worst.py [--repeats 15] [--persons 8] [--goal-ms 50]

Generates texts of MAX_TEXT_CHARS (and more: only the tail is read) meant to be slow or
wrong: unclosed fences before long lines (the shape the old fence pattern was quadratic on),
brace and bracket towers, thousands of fences, `persons` keys and verdict blocks, runs of
backticks, names mentioned tens of thousands of times, control characters. Each is read
(`edged.results.matcher.read_result`, everything the matcher stage does with a text) --repeats times
with --persons configured names; prints per text the median, the spread (max - min) and the
worst, then the worst of all against --goal-ms. Exit 1 if the goal is missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable

from edged.results.matcher import read_result
from edged.results.verdict import MAX_TEXT_CHARS

CAP = MAX_TEXT_CHARS


def _verdict(names: list[str], present: str) -> str:
    persons = [{"name": n, "present": n == present, "confidence": 0.9} for n in names]
    return (
        "```json\n" + json.dumps({"persons": persons, "title": "t", "threat_level": 0}) + "\n```\n"
    )


def texts(names: list[str]) -> dict[str, str]:
    alice = _verdict(names, names[0])
    pair = _verdict(names, names[0]) + _verdict(names, names[1])
    mention = f"no sign of {names[0]}, but {names[1]} may be there? "
    shapes: dict[str, Callable[[], str]] = {
        "unclosed fence, long line": lambda: "```json " + "a" * CAP,
        "unclosed fence, long line, verdict": lambda: "```json " + "a" * CAP + "\n" + alice,
        "unclosed fence, many lines": lambda: "```json\n" + "a b c\n" * (CAP // 6),
        "brace tower": lambda: "{" * CAP,
        "brace tower in a fence": lambda: "```json\n" + "{" * CAP + "\n```\n" + alice,
        "bracket tower": lambda: '{"persons": ' + "[" * CAP,
        "persons keys": lambda: '{"persons": [' * (CAP // 13),
        "empty fences": lambda: "```\n" * (CAP // 4),
        "inline fences": lambda: "``` x ```" * (CAP // 9),
        "backtick run": lambda: "`" * CAP + "\n" + alice,
        "verdict blocks that disagree": lambda: pair * (CAP // len(pair)),
        "persons entries": lambda: (
            "```json\n"
            + json.dumps({"persons": [{"name": f"p{i}", "present": True} for i in range(9000)]})
            + "\n```"
        ),
        "mentions": lambda: mention * (CAP // len(mention)),
        "quotes and mentions": lambda: f"'\"{names[0]} " * (CAP // (len(names[0]) + 3)),
        "control characters": lambda: "".join(map(chr, range(0, 0x3000)))[:CAP] * 1,
        "prose twice the cap, verdict last": lambda: "A quiet street. " * (2 * CAP // 16) + alice,
    }
    return {name: make() for name, make in shapes.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--persons", type=int, default=8)
    parser.add_argument("--goal-ms", type=float, default=50.0)
    args = parser.parse_args()
    names = ["Alice", "Bob", "Will", "José", "Carol Ann", "May", "Σοφία", "Mark"]
    names = (names + [f"Person {i}" for i in range(args.persons)])[: max(2, args.persons)]
    worst_all = 0.0
    print(f"{'text':38} {'chars':>8} {'median ms':>10} {'spread ms':>10} {'worst ms':>9}")
    for label, text in texts(names).items():
        read_result(text, names)  # compiled patterns are cached, as in the running daemon
        took = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            read_result(text, names)
            took.append((time.perf_counter() - started) * 1000)
        worst = max(took)
        worst_all = max(worst_all, worst)
        spread = worst - min(took)
        print(
            f"{label:38} {len(text):>8} {statistics.median(took):>10.1f}"
            f" {spread:>10.1f} {worst:>9.1f}"
        )
    verdict = "met" if worst_all < args.goal_ms else "MISSED"
    print(f"worst of all: {worst_all:.1f} ms (goal < {args.goal_ms:.0f} ms: {verdict})")
    return 0 if worst_all < args.goal_ms else 1


if __name__ == "__main__":
    sys.exit(main())

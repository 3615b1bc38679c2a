"""Every top-level module and package of edged has its place in the layering contract
(pyproject.toml, checked by `lint-imports` in CI): a module left out of it could import
anything without the contract noticing."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Entry points above every layer: they may import anything, nothing imports them.
ENTRY_POINTS = {"edged.__main__", "edged.cli"}
#: What the emulator may import of edged: the error base and the asyncio helpers.
EMULATOR_USES = {"edged.errors", "edged.aio"}


def _top_level_names() -> set[str]:
    names = set()
    for path in (ROOT / "edged").iterdir():
        if path.name.startswith(("_", ".")) and path.name != "__main__.py":
            continue
        if path.suffix == ".py":
            names.add(f"edged.{path.stem}")
        elif (path / "__init__.py").exists():
            names.add(f"edged.{path.name}")
    return names


def _contract() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def test_every_top_level_module_is_in_a_layer_or_is_the_emulator():
    layers = next(c for c in _contract()["contracts"] if c["type"] == "layers")["layers"]
    layered = {name.strip() for layer in layers for name in layer.split("|")}
    placed = layered | {"edged.emulator"} | ENTRY_POINTS
    assert _top_level_names() - placed == set(), "add them to the layers in pyproject.toml"
    assert layered - _top_level_names() == set(), "the contract names modules that are gone"


def test_the_emulator_is_forbidden_every_other_module():
    island = next(c for c in _contract()["contracts"] if c["name"] == "The emulator is an island")
    others = _top_level_names() - {"edged.emulator", *EMULATOR_USES} - ENTRY_POINTS
    assert others - set(island["forbidden_modules"]) == set()
    assert EMULATOR_USES & set(island["forbidden_modules"]) == set()

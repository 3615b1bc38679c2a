"""The base of every config section: a `ConfigModel` (frozen, unknown keys refused, problems
of several keys reported with the rest) that may read its secrets from `<key>_file`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from edged.config.problems import ConfigModel, Problem
from edged.config.source import read_secret_file


class Section(ConfigModel):
    #: Keys that may instead be given as `<key>_file`, a file holding the secret.
    secret_files: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def prepare(cls, data: dict[str, Any], context: Mapping[str, Any]) -> list[Problem]:
        problems: list[Problem] = []
        for key in cls.secret_files:
            problems += read_secret_file(data, key, Path(context.get("base_dir") or Path.cwd()))
        return problems

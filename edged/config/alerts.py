"""Config models and value checks of the alert policy: camera filters, quiet hours, argv fields.

Kept apart from edged/config/model.py so that the policy's own vocabulary (weekdays, "22:00-06:00",
"{person}") lives in one place; edged/config/model.py puts these models into its sections.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from edged.config.fields import CameraName, TimeZone
from edged.config.problems import ConfigModel, Problem
from edged.names import did_you_mean
from edged.schedule import HourRange

#: The fields a command sink fills into its argv, e.g. ["notify", "{person}", "{camera}"].
COMMAND_FIELDS = (
    "person",
    "camera",
    "confidence",
    "clip",
    "snapshot",
    "alert_id",
    "time",
    "instance",
    "summary",
    "title",
    "threat_level",
)
#: The name of alerts for people who match no reference person.
UNKNOWN_PERSON = "unknown"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _hours(value: str) -> str:
    HourRange.parse(value)  # the form of cameras[].schedule, so that both read alike
    return value


def existing_file(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    return path


def _argv_fields(argv: tuple[str, ...]) -> tuple[str, ...]:
    for arg in argv:
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(arg) if name is not None]
        except ValueError as exc:
            raise ValueError(f"bad braces in {arg!r}: {exc}; write {{{{ for a literal {{") from None
        for name in fields:
            if name not in COMMAND_FIELDS:
                known = ", ".join(f"{{{field}}}" for field in COMMAND_FIELDS)
                hint = did_you_mean(name, COMMAND_FIELDS)
                raise ValueError(f"unknown field {{{name}}} in {arg!r}; known: {known}{hint}")
    return argv


Hours = Annotated[str, AfterValidator(_hours)]
CommandArgv = AfterValidator(_argv_fields)


class CameraFilter(ConfigModel):
    """The cameras a person alerts on: `only` these, or every camera `except` these."""

    only: tuple[CameraName, ...] | None = None
    except_: tuple[CameraName, ...] | None = Field(default=None, alias="except")

    @classmethod
    def prepare(cls, data: dict[str, Any], context: Mapping[str, Any]) -> list[Problem]:
        given = [key for key in ("only", "except") if data.get(key) is not None]
        if len(given) != 1:
            return [((), "give either only or except, with a list of camera names")]
        if data[given[0]] == []:
            return [((given[0],), "empty list; to silence a person, set alert: never")]
        return []

    def allows(self, camera: str) -> bool:
        if self.only is not None:
            return camera in self.only
        return camera not in (self.except_ or ())


class QuietHoursConfig(ConfigModel):
    """A daily window in which matches on some cameras raise no alert (clips are still
    uploaded and analysed: this silences alerts, it does not save uploads)."""

    hours: Hours
    #: Unset: every camera.
    cameras: tuple[CameraName, ...] | None = None
    #: The days on which the window starts (a window across midnight ends on the next day).
    days: tuple[Weekday, ...] | None = None
    #: Unset: the local time of the box.
    timezone: TimeZone | None = None


def camera_name_problems(data: Mapping[str, Any]) -> list[Problem]:
    """Camera names in persons[].cameras and alerts.quiet_hours[].cameras that no camera has.

    Only checked when every camera name is known from the config: a preset folder without a
    `cameras` list takes its camera names from the recordings' paths."""
    cameras = data.get("cameras")
    known: set[str] = set()
    for camera in cameras if isinstance(cameras, list) else []:
        if not isinstance(camera, dict):
            return []
        if camera.get("preset") is not None:
            listed = camera.get("cameras")
            if not isinstance(listed, list):
                return []
            known.update(str(name) for name in listed)
        elif isinstance(camera.get("name"), str):
            known.add(camera["name"])
    problems: list[Problem] = []
    persons = data.get("persons")
    for index, person in enumerate(persons if isinstance(persons, list) else []):
        chosen = person.get("cameras") if isinstance(person, dict) else None
        for key in ("only", "except"):
            names = chosen.get(key) if isinstance(chosen, dict) else None
            problems += _unknown(("persons", index, "cameras", key), names, known)
    alerts = data.get("alerts")
    rules = alerts.get("quiet_hours") if isinstance(alerts, dict) else None
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        names = rule.get("cameras") if isinstance(rule, dict) else None
        problems += _unknown(("alerts", "quiet_hours", index, "cameras"), names, known)
    return problems


def _unknown(loc: tuple[str | int, ...], names: object, known: set[str]) -> list[Problem]:
    if not isinstance(names, list):
        return []
    return [
        ((*loc, position), f"no camera is named {name!r}" + did_you_mean(name, sorted(known)))
        for position, name in enumerate(names)
        if isinstance(name, str) and name not in known
    ]


def duplicate_unknown_person(persons: Iterable[Any]) -> list[Problem]:
    """With alerts.unknown on, `unknown` names those alerts and cannot be a reference person."""
    return [
        (("persons", index, "name"), f"{UNKNOWN_PERSON!r} is the name of alerts.unknown alerts")
        for index, person in enumerate(persons)
        if isinstance(person, dict)
        and isinstance(person.get("name"), str)
        and person["name"].strip().casefold() == UNKNOWN_PERSON
    ]

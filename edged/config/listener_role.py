"""Which public listener edged opens, and why: it follows from the config alone."""

from __future__ import annotations

import enum


class ListenerRole(enum.Enum):
    """What the public listener serves, which follows from the config."""

    CALLBACKS = "callbacks"  # api.mode async: results, person images, snapshot links
    PERSONS = "persons"  # api.mode sync with local person images: only those
    NONE = "none"  # api.mode sync, persons given by URL: no public port at all

    def describe(self, port: int) -> str:
        if self is ListenerRole.CALLBACKS:
            return f"port {port}, for result callbacks, person images and snapshot links"
        if self is ListenerRole.PERSONS:
            return (
                f"port {port}, only for the local person images the service fetches"
                " (api.mode sync: results come back on the upload's own connection)"
            )
        return "none (api.mode sync: results come back on the upload's own connection)"


def listener_role(mode: str, local_person_images: bool) -> ListenerRole:
    if mode != "sync":
        return ListenerRole.CALLBACKS
    return ListenerRole.PERSONS if local_person_images else ListenerRole.NONE

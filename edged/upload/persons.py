"""Reference persons as the API sees them: a public URL each, local images served by edged."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from edged.ledger.store import Ledger
from edged.upload.api import Person

PERSONS_TOKEN_KEY = "persons_token"


@dataclass(frozen=True, slots=True)
class PersonDirectory:
    """`persons` is what every upload sends; `images` maps a served file name to its path."""

    persons: tuple[Person, ...]
    token: str
    images: dict[str, Path]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(person.name for person in self.persons)


def persons_token(ledger: Ledger) -> str:
    """A random token kept in the ledger, so image URLs survive restarts (the service may fetch
    them after a clip was uploaded by an earlier run); blocking."""
    return ledger.meta.get_or_create(PERSONS_TOKEN_KEY, lambda: secrets.token_urlsafe(16))


def build_directory(
    configured: tuple[tuple[str, str | None, Path | None], ...], public_url: str, token: str
) -> PersonDirectory:
    """`configured` is (name, url, image) per person, in config order."""
    persons: list[Person] = []
    images: dict[str, Path] = {}
    for index, (name, url, image) in enumerate(configured):
        if url is not None:
            persons.append(Person(name, url))
            continue
        assert image is not None, "config validation guarantees url or image"
        served_name = f"{index}{image.suffix.lower()}"
        images[served_name] = image
        persons.append(Person(name, f"{public_url}/persons/{token}/{served_name}"))
    return PersonDirectory(tuple(persons), token, images)

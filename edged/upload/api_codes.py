"""What each answer of the security API means for edged: one table, from API.md.

The vendor documents business codes inside HTTP 200 envelopes (v1.2 "Code" page), and a
newer page aligns HTTP statuses with the body's `code`. A code means the same thing
wherever it arrives, so both are read through this table. Each meaning is one of:

- transient: the service is busy or unreachable; retried with backoff, honouring
  Retry-After;
- permanent: this clip will never be accepted; it fails with the reason;
- paused: nothing can be uploaded until the operator acts (the key, the credit, the key's
  permissions); the whole queue waits, kept, and is probed every few minutes;
- duplicate: the service already has this upload; the ledger's own state decides.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Failure(enum.StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    PAUSED = "paused"
    DUPLICATE = "duplicate"


class PauseReason(enum.StrEnum):
    """Why every upload waits; each names what the operator must fix."""

    REFUSED_KEY = "refused_key"
    NO_CREDIT = "no_credit"
    NO_PERMISSION = "no_permission"


#: What the operator is told to do for each pause, in the log, `edged status` and /healthz.
PAUSE_ADVICE = {
    PauseReason.REFUSED_KEY: "the API key was refused: fix api.api_key, then reload edged",
    PauseReason.NO_CREDIT: "the account is out of credit: top it up; uploads resume by themselves",
    PauseReason.NO_PERMISSION: (
        "the API key lacks permission for this API: use a security key, then reload edged"
    ),
}


@dataclass(frozen=True, slots=True)
class Meaning:
    failure: Failure
    what: str
    pause: PauseReason | None = None
    #: At most this many tries of one clip end in this code before it fails.
    max_tries: int | None = None
    #: Whether a try that ends so counts against api.max_attempts (the service being busy or
    #: away is not the clip's fault).
    counted: bool = True


_REFUSED = Meaning(Failure.PAUSED, "authorization invalid", PauseReason.REFUSED_KEY)
_NO_CREDIT = Meaning(Failure.PAUSED, "not enough points", PauseReason.NO_CREDIT)
_DUPLICATE = Meaning(Failure.DUPLICATE, "duplicate request")
_BUSY = Meaning(Failure.TRANSIENT, "too busy", counted=False)

#: Business codes of the v1.2 "Code" page.
BUSINESS_CODES: dict[str, Meaning] = {
    # The vendor's own client retries 0001 once, as a network fault.
    "0001": Meaning(Failure.TRANSIENT, "parameter error (retried once)", max_tries=2),
    "0003": Meaning(Failure.PERMANENT, "parameter error"),
    "0401": _REFUSED,
    "0402": _NO_CREDIT,
    "0403": Meaning(Failure.PAUSED, "account disabled", PauseReason.REFUSED_KEY),
    "0409": _DUPLICATE,
    "0429": _BUSY,
    "9009": Meaning(Failure.PAUSED, "permission denied", PauseReason.NO_PERMISSION),
}

#: HTTP statuses, and the same numbers as a body `code`.
HTTP_CODES: dict[int, Meaning] = {
    400: Meaning(Failure.PERMANENT, "bad request"),
    401: _REFUSED,
    402: _NO_CREDIT,
    403: Meaning(Failure.PAUSED, "forbidden", PauseReason.REFUSED_KEY),
    405: Meaning(Failure.PERMANENT, "method not allowed"),
    408: Meaning(Failure.TRANSIENT, "request timeout", counted=False),
    409: _DUPLICATE,
    413: Meaning(Failure.PERMANENT, "payload too large"),
    415: Meaning(Failure.PERMANENT, "unsupported media type"),
    429: _BUSY,
}

#: A code nobody documented: taken as the service's fault, retried, bounded by max_attempts.
UNKNOWN = Meaning(Failure.TRANSIENT, "undocumented code")


def meaning_of_status(status: int) -> Meaning | None:
    """None for a success (2xx)."""
    if 200 <= status < 300:
        return None
    if status in HTTP_CODES:
        return HTTP_CODES[status]
    if status >= 500:
        return Meaning(Failure.TRANSIENT, "server error", counted=False)
    if 400 <= status < 500:
        return Meaning(Failure.PERMANENT, "client error")
    return UNKNOWN  # 1xx/3xx where an answer was expected


def meaning_of_code(code: str | None) -> Meaning:
    """The meaning of an error envelope's `code` (or callback `status`)."""
    if code is None:
        return UNKNOWN
    if code in BUSINESS_CODES:
        return BUSINESS_CODES[code]
    if code.isascii() and code.isdigit() and len(code) == 3:
        return meaning_of_status(int(code)) or UNKNOWN
    return UNKNOWN

"""The root of edged's exceptions; each module owns its own subclasses."""


class EdgedError(Exception):
    """Base of every error edged raises on purpose."""

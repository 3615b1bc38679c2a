"""The HMAC key of a webhook secret, the Standard Webhooks way.

A secret in the spec's form `whsec_<base64>` is base64-decoded (that is what the libraries do
with it); any other secret is used as its UTF-8 bytes. The config check and the webhook sink
both read a secret through `signing_key`, so a secret the config accepts is one the sink can use.
"""

from __future__ import annotations

import base64
import binascii

SECRET_PREFIX = "whsec_"


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret (see the module's doc). ValueError: a `whsec_` secret that
    is not base64 (the config check reports it)."""
    if secret.startswith(SECRET_PREFIX):
        encoded = secret.removeprefix(SECRET_PREFIX)
        try:
            # Padding is optional in the spec's secrets, as in its libraries.
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error:
            raise ValueError("a whsec_ secret is base64 after the prefix") from None
        if not key:
            raise ValueError("a whsec_ secret needs bytes after the prefix")
        return key
    return secret.encode()

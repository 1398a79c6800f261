"""The admin API key: constant-time comparison, and an id for logs that is not the key."""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr
from starlette.types import Scope


class AdminKey:
    def __init__(self, key: SecretStr) -> None:
        self._key = key.get_secret_value().encode()
        self.key_id = "key:" + hashlib.sha256(self._key).hexdigest()[:8]
        """Who made a change, for the audit log: a hash prefix, never the key."""

    def presented(self, scope: Scope) -> bytes | None:
        """The key sent with ``X-API-Key`` or ``Authorization: Bearer``, if any."""
        for name, value in scope.get("headers", ()):
            if name == b"x-api-key":
                return bytes(value).strip()
            if name == b"authorization":
                scheme, _, token = bytes(value).partition(b" ")
                if scheme.lower() == b"bearer":
                    return token.strip()
        return None

    def check(self, scope: Scope) -> bool:
        presented = self.presented(scope)
        return presented is not None and hmac.compare_digest(presented, self._key)

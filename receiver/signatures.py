"""X-Hook-Signature: HMAC-SHA256 over the exact raw body, compared in constant time. Pure.

See ../shared/reference/asana-webhooks.md, "Security": the signature is the hex SHA256 HMAC
of the request body keyed with the X-Hook-Secret from the handshake.
"""

from __future__ import annotations

import hashlib
import hmac


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_matches(body: bytes, signature: str | None, secret: str) -> bool:
    if not signature:
        return False
    expected = sign(body, secret)
    return hmac.compare_digest(expected.encode("ascii"), signature.strip().lower().encode())

"""Delivery bodies and their signatures. No I/O."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

__all__ = ["encode_body", "sign"]


def encode_body(events: list[dict[str, Any]]) -> bytes:
    """The exact bytes POSTed to a webhook target: ``{"events": [...]}``."""
    return json.dumps({"events": events}, separators=(",", ":"), ensure_ascii=False).encode()


def sign(secret: str, body: bytes) -> str:
    """X-Hook-Signature: hex HMAC-SHA256 of the body, keyed with the webhook secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

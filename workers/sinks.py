"""Optional sinks beside the stream: Python handlers and a signed HTTP forward. I/O edge.

Each sink runs as its own RQ job (workers.jobs.run_handler / forward_change) with its own
Retry, after the entry is in the stream: a failing sink is retried alone and never makes
the change appear twice in the stream.

The forward is signed with our own header, ``X-Asana-Hooks-Signature``: the hex
HMAC-SHA256 of the exact body bytes with HOOKS_FORWARD_SECRET. A receiver checks it with
``hmac.compare_digest(header, hmac.new(secret, body, sha256).hexdigest())``.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx

from asana_hooks.errors import HooksError

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Asana-Hooks-Signature"
FORWARD_TIMEOUT_SECONDS = 10.0

Handler = Callable[[dict[str, Any]], object]


class SinkFailed(HooksError):
    """A sink refused or could not take a change; its job is retried."""


def encode_change(change: dict[str, Any]) -> bytes:
    """The exact bytes forwarded (and signed)."""
    return json.dumps(change, separators=(",", ":"), sort_keys=True).encode("utf-8")


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def load_handler(spec: str) -> Handler:
    """``pkg.mod:func`` -> the function (HOOKS_HANDLERS names these)."""
    module_name, _, attribute = spec.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"handler {spec} is not callable")
    handler: Handler = target
    return handler


def forward(url: str, change: dict[str, Any], *, secret: str | None) -> int:
    """POST the change to ``url``; a non-2xx answer or no answer raises SinkFailed."""
    body = encode_change(change)
    headers = {"Content-Type": "application/json", "User-Agent": "asana-hooks/0.1"}
    if secret:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    else:
        log.warning("forward.unsigned: set HOOKS_FORWARD_SECRET to sign forwarded changes")
    try:
        response = httpx.post(
            url,
            content=body,
            headers=headers,
            timeout=FORWARD_TIMEOUT_SECONDS,
            trust_env=False,
            follow_redirects=False,  # the forward reaches HOOKS_FORWARD_URL and nothing else
        )
    except httpx.HTTPError as exc:
        raise SinkFailed(f"forward to {url} failed: {exc}") from exc
    if not response.is_success:
        raise SinkFailed(f"forward to {url} answered {response.status_code}")
    return response.status_code

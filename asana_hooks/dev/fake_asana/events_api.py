"""The Events API's event log and sync tokens. No I/O.

Rules (Asana's documentation): a request without a sync token, or with an unknown, expired
(24 h, scaled) or explicitly expired token, is answered 412 with a fresh token; the fresh
token sees only events that happen after it was made. A valid token returns at most 100
events, a new token, and ``has_more``. Re-requesting the current token always returns the
same results (answers are remembered per token).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from .event import Event
from .util import new_sync_token

__all__ = ["PAGE_SIZE", "EventLog", "SyncAnswer", "SyncExpired"]

PAGE_SIZE = 100


class SyncExpired(Exception):
    """412: the sync token is missing, invalid or too old; carries a fresh one."""

    def __init__(self, fresh: str) -> None:
        super().__init__("sync token invalid or too old")
        self.fresh = fresh


@dataclass(frozen=True)
class SyncAnswer:
    data: list[dict[str, Any]]
    sync: str
    has_more: bool


@dataclass
class _Token:
    resource: str
    after_seq: int  # events with seq > after_seq are "new" for this token
    created: float  # time.monotonic()
    answer: SyncAnswer | None = None


class EventLog:
    """Append-only log of (seq, event, targets); sync tokens point into it."""

    def __init__(self, lock: threading.RLock, token_ttl: float) -> None:
        self._lock = lock
        self.token_ttl = token_ttl
        self._entries: list[tuple[int, Event, frozenset[str]]] = []
        self._seq = 0
        self._tokens: dict[str, _Token] = {}

    def append(self, event: Event, targets: frozenset[str]) -> None:
        with self._lock:
            self._seq += 1
            self._entries.append((self._seq, event, targets))

    def expire_all(self) -> None:
        """Every existing sync token becomes invalid (412 with a fresh token)."""
        with self._lock:
            self._tokens.clear()

    def _fresh(self, resource: str) -> str:
        token = new_sync_token()
        self._tokens[token] = _Token(resource, self._seq, time.monotonic())
        return token

    def _valid(self, token: str | None, resource: str) -> _Token | None:
        if not token:
            return None
        state = self._tokens.get(token)
        if state is None or state.resource != resource:
            return None
        if time.monotonic() - state.created > self.token_ttl:
            del self._tokens[token]
            return None
        return state

    def read(self, resource: str, token: str | None) -> SyncAnswer:
        """Answer ``GET /events?resource=&sync=``; raises :class:`SyncExpired` for 412."""
        with self._lock:
            state = self._valid(token, resource)
            if state is None:
                self._purge()
                raise SyncExpired(self._fresh(resource))
            if state.answer is not None:
                return state.answer
            matching: list[tuple[int, Event]] = []
            has_more = False
            for seq, event, targets in self._entries:
                if seq <= state.after_seq or resource not in targets:
                    continue
                if len(matching) == PAGE_SIZE:
                    has_more = True
                    break
                matching.append((seq, event))
            last_seq = matching[-1][0] if has_more else self._seq
            next_token = new_sync_token()
            self._tokens[next_token] = _Token(resource, last_seq, time.monotonic())
            state.answer = SyncAnswer(
                data=[event.events_api_json() for _, event in matching],
                sync=next_token,
                has_more=has_more,
            )
            return state.answer

    def _purge(self) -> None:
        now = time.monotonic()
        stale = [k for k, v in self._tokens.items() if now - v.created > self.token_ttl]
        for key in stale:
            del self._tokens[key]

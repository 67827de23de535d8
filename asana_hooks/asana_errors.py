"""What can go wrong when we call Asana, as one family of exceptions. Pure.

Each carries its data as attributes. ``retryable`` says whether trying again later may
succeed (RQ's Retry handles those); the others are answers, not accidents.
"""

from __future__ import annotations

from asana_hooks.errors import HooksError


class AsanaError(HooksError):
    """Asana refused a request, or could not be reached."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.path = path

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, path={self.path!r})"


class InvalidRequest(AsanaError):
    """400: Asana says the request is wrong (its message says why)."""


class BadToken(AsanaError):
    """401: the access token is missing, revoked or wrong. Every caller stops."""


class Forbidden(AsanaError):
    """403: the token may not see this object, or Asana refuses the action."""


class NotFound(AsanaError):
    """404: the object does not exist (deleted, or a story removed by consolidation)."""


class SyncTokenExpired(AsanaError):
    """412 from the Events API: the sync token is invalid or too old; ``sync`` is a fresh one."""

    def __init__(self, message: str, *, sync: str, path: str = "") -> None:
        super().__init__(message, status=412, path=path)
        self.sync = sync


class RateLimited(AsanaError):
    """429: over the budget; nobody may call Asana for ``retry_after`` seconds."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float, path: str = "") -> None:
        super().__init__(message, status=429, path=path)
        self.retry_after = retry_after


class AsanaUnavailable(AsanaError):
    """5xx, a timeout or a refused connection: worth retrying later."""

    retryable = True


class BudgetExhausted(AsanaError):
    """Our own shared budget has no room within the wait we allow; retry later."""

    retryable = True

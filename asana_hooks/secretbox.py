"""Secrets: a string that never shows itself, and encryption at rest for webhook secrets
(MultiFernet: the first key encrypts, all decrypt). No I/O."""

from __future__ import annotations

import binascii
import hmac
from base64 import urlsafe_b64decode
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from asana_hooks.errors import HooksError


class InvalidKey(HooksError, ValueError):
    """The text is not a Fernet key."""


class UndecryptableSecret(HooksError):
    """A stored secret cannot be decrypted by any configured key."""


class Secret:
    """A string that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets_equal(other._value, self._value)

    def __hash__(self) -> int:
        return hash(self._value)


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def check_key(key: str) -> None:
    try:
        raw = urlsafe_b64decode(key.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidKey("not url-safe base64") from None
    if len(raw) != 32:
        raise InvalidKey("not 32 bytes")


def secrets_equal(left: str, right: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(left.encode("utf-8"), right.encode("utf-8"))


class SecretBox:
    """Encrypts and decrypts short secrets with a rotatable list of keys."""

    def __init__(self, keys: Sequence[Secret]) -> None:
        if not keys:
            raise ValueError("SecretBox needs at least one key")
        self._fernet = MultiFernet([Fernet(key.reveal().encode("ascii")) for key in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise UndecryptableSecret("no configured key decrypts this secret") from None

    def rotate(self, token: str) -> str:
        """Re-encrypt under the first key (keys rotate: add the new key first, rotate, drop)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise UndecryptableSecret("no configured key decrypts this secret") from None

    def __repr__(self) -> str:
        return "SecretBox(<keys hidden>)"

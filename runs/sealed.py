"""Secrets kept in the database encrypted (Fernet): browser profiles' state, the
credentials of a start's upstream proxy and a space's upstream Browser Run token. Keys
from BCTRL_PROFILE_KEYS (newest first: the first seals, all open), else one derived from
SECRET_KEY and each of its fallbacks."""

import base64
import hashlib
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

__all__ = ["InvalidToken", "seal", "unseal"]


def _derived_key(secret: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(b"bctrl-profiles:" + secret.encode()).digest())


def _fernet() -> MultiFernet:
    keys = [key.encode() for key in settings.BCTRL_PROFILE_KEYS] or [
        _derived_key(secret) for secret in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    ]
    return MultiFernet([Fernet(key) for key in keys])


def seal(value: Any) -> bytes:
    return _fernet().encrypt(orjson.dumps(value))


def unseal(token: bytes | memoryview) -> Any:
    """The value sealed in `token`; InvalidToken if no key opens it."""
    return orjson.loads(_fernet().decrypt(bytes(token)))

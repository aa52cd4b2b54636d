"""Prefixed opaque ids (`run_…`, `rt_…`) that sort by creation time.

48 bits of milliseconds and 80 random bits in Crockford base32: ordering by id is
ordering by creation, which gives cursor pagination a single indexed column.
"""

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str) -> str:
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"

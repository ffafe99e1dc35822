"""The one hasher of settings: ``config_hash`` names the entries of the project's caches (generated sets, the
feature cache, the study's stages) by everything they depend on; ``digest_lines`` is the identity of a file list."""

import hashlib
import json
from collections.abc import Iterable


def config_hash(config: object, *, length: int = 16) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``config`` as canonical JSON (sorted keys, no spaces), so
    independent of key order; values JSON cannot hold (paths, ...) enter as their ``str``.

    Args:
        config: a JSON-serialisable value, normally a dict of settings.
        length: hex digits kept, 1 to 64.

    Raises:
        ValueError: ``length`` is not an integer in [1, 64].
    """
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= 64:
        raise ValueError(f"config_hash: length must be an integer in [1, 64], got {length!r}")
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def digest_lines(lines: Iterable[str]) -> str:
    """SHA-256 (hex) of the lines in order: the identity of a file list (paths, or paths with crop boxes)."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(f"{line}\n".encode())
    return digest.hexdigest()

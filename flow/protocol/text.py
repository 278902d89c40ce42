"""Making text from the outside world safe to keep and show."""

from __future__ import annotations

#: Longest provider-supplied text kept in an error or a record.
MAX_TEXT = 200


def sanitize(text: str, limit: int = MAX_TEXT) -> str:
    """Escape control characters and truncate, for error descriptions and the like.

    ``error_description`` is chosen by whoever sent the callback: it may carry CRLF
    to forge log lines, or megabytes to fill them (RFC 6749 section 4.1.2.1 limits
    its characters, but a client cannot rely on that).
    """
    escaped = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    if len(escaped) > limit:
        return escaped[: limit - 3] + "..."
    return escaped

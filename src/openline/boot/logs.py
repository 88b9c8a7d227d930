"""Log hygiene: credentials that arrive in a query string never reach a log line."""

from __future__ import annotations

import logging
import re

#: query parameters that carry credentials (short-lived tokens over the socket, JWTs)
SECRET_PARAMS = ("session_token", "conversation_token", "jwt", "api_key", "token")
_PATTERN = re.compile(r"(?i)([?&](?:" + "|".join(SECRET_PARAMS) + r")=)[^&\s\"']+")
LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn", "openline")


def redact(text: str) -> str:
    """``...?session_token=abc&x=1`` -> ``...?session_token=[redacted]&x=1``."""
    return _PATTERN.sub(r"\1[redacted]", text)


class RedactSecrets(logging.Filter):
    """Rewrites each record's message with credential values redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


def install_redaction() -> None:
    """Attach the filter to the server's loggers (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())

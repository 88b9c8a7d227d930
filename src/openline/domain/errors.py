"""One exception tree for Openline; each API dialect translates it at its edge.

Domain errors carry a machine-readable ``code`` and whether retrying can help
(``retryable``). They never know about HTTP: ``api/*/errors.py`` maps the classes
to status codes and error bodies.
"""

from __future__ import annotations


class OpenlineError(Exception):
    """Base of every error Openline raises on purpose."""

    code: str | None = None
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ValidationFailed(OpenlineError):
    """Input broke a rule; ``param_errors`` maps each offending field to a message."""

    code = "validation_error"

    def __init__(
        self,
        message: str = "Invalid parameters",
        param_errors: dict[str, str] | None = None,
        *,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.param_errors: dict[str, str] = dict(param_errors or {})


class BadRequest(OpenlineError):
    """A request that cannot be served as sent, not tied to one body field (a missing
    header); dialects answer 400 with their plain error body."""

    code = "bad_request"


class NotFound(OpenlineError):
    """The named resource does not exist (or is not visible to the caller)."""

    code = "not_found"


class Conflict(OpenlineError):
    """The request conflicts with the current state (duplicate name, live conversation...)."""

    code = "conflict"


class Unauthorized(OpenlineError):
    """Missing or invalid credentials."""

    code = "unauthorized"


class Forbidden(OpenlineError):
    """Valid credentials that may not do this."""

    code = "forbidden"


class ProviderError(OpenlineError):
    """A model provider (VAD, STT, LLM, TTS) failed; ``retryable`` says if a retry may help."""

    code = "provider_error"

    def __init__(self, message: str, *, code: str | None = None, retryable: bool = False) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable


class ProviderUnavailable(ProviderError):
    """A provider could not be loaded or reached at all (missing model, server down)."""

    code = "provider_unavailable"


class ProviderTimeout(ProviderError):
    """A provider did not answer in time."""

    code = "provider_timeout"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code, retryable=True)

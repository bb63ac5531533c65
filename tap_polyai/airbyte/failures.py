"""Which Airbyte `failure_type` an error is, and the message it carries.

The platform acts on the type: a `config_error` is the user's to fix (it does not retry),
a `transient_error` is retried, a `system_error` is a bug or an unexpected answer. The
message is the one the tap logs for the same failure: it names the setting, project and
HTTP status and never carries a key, a phone number or transcript text.
"""

from __future__ import annotations

from singer_sdk.exceptions import ConfigValidationError

from tap_polyai import redaction
from tap_polyai.airbyte.catalog import CatalogError
from tap_polyai.errors import RequestRefusedError, RetriesExhaustedError
from tap_polyai.state import InvalidStateError
from tap_polyai.tap import NAMED_ERRORS, _one_line

CONFIG_ERROR = "config_error"
TRANSIENT_ERROR = "transient_error"
SYSTEM_ERROR = "system_error"


class InputFileError(Exception):
    """A --config/--catalog/--state file that cannot be read as JSON."""


# Errors whose fix is a change of settings, state or catalog; an auth failure (401/403) and
# an unknown project (404) are RequestRefusedError.
_CONFIG_ERRORS = (
    InputFileError,
    ConfigValidationError,
    InvalidStateError,
    CatalogError,
    RequestRefusedError,
)


def failure_type(exc: BaseException) -> str:
    if isinstance(exc, _CONFIG_ERRORS):
        return CONFIG_ERROR
    if isinstance(exc, RetriesExhaustedError):  # 429/5xx/network outlasted 'max_retries'
        return TRANSIENT_ERROR
    return SYSTEM_ERROR


def failure_message(exc: BaseException) -> str:
    """The line the tap's command line logs for `exc` (tap.TapCommand), redacted."""
    if failure_type(exc) == SYSTEM_ERROR and not isinstance(exc, NAMED_ERRORS):
        return f"Unexpected error ({type(exc).__name__}): {redaction.shorten(str(exc), 300)}"
    return redaction.redact(_one_line(exc))

"""The media pipeline's errors: one root (`MediaError`), one subclass per thing a caller handles.

Every error carries a stable `code` (the GraphQL layer maps it to its error enum), a message
that says what to do next, `field` (the name of the argument at fault, as this package spells
it, when one is: callers with their own names for arguments map it), and `retryable`: True means
the same call may succeed later (storage hiccup, crashed worker); False means retrying the same
input will fail the same way.
Driver errors (botocore, PyAV, Pillow) are translated into these at the boundary where they
happen and never escape the package.
"""

from __future__ import annotations


class MediaError(Exception):
    """Root of every error raised by `media_pipeline`."""

    code = "MEDIA_ERROR"
    retryable = False
    field: str | None = None


class StorageError(MediaError):
    """The object store failed or timed out; the operation may be retried."""

    code = "STORAGE_UNAVAILABLE"
    retryable = True


class InvalidUploadError(MediaError, ValueError):
    """The upload request itself is malformed (bad checksum format, wrong part count, ...).

    `problem` is the message without its subject, so a caller can name the argument its own way."""

    code = "INVALID_UPLOAD"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field, self.problem = field, problem


class UploadNotFoundError(MediaError, LookupError):
    """No upload with this id (never started, aborted, or cleaned up as stale)."""

    code = "UPLOAD_NOT_FOUND"


class UploadAlreadyCompletedError(MediaError):
    """`complete_upload` was called for an upload that is already completed.

    `result` holds the `CompletedUpload` the first call returned, so a client whose first
    response was lost can carry on with it.
    """

    code = "UPLOAD_ALREADY_COMPLETED"

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class UploadFailedError(MediaError):
    """The upload was completed but rejected earlier; start a new upload."""

    code = "UPLOAD_FAILED"


class MissingPartsError(MediaError):
    """Some parts were never uploaded (or were uploaded with the wrong size)."""

    code = "MISSING_PARTS"

    def __init__(self, message: str, missing: list[int]) -> None:
        super().__init__(message)
        self.missing = missing


class ChecksumMismatchError(MediaError, ValueError):
    """The bytes received do not hash to the sha256 the client declared."""

    code = "CHECKSUM_MISMATCH"


class MediaTooLargeError(MediaError, ValueError):
    """Bigger than the configured byte, pixel, dimension or duration limit."""

    code = "MEDIA_TOO_LARGE"


class DecompressionBombError(MediaTooLargeError):
    """An image whose header declares far more pixels than allowed (a decompression bomb)."""

    code = "DECOMPRESSION_BOMB"


class UnsupportedMediaError(MediaError, ValueError):
    """Not a supported image/video format, or not the kind the upload declared."""

    code = "UNSUPPORTED_MEDIA"


class CorruptMediaError(UnsupportedMediaError):
    """The file claims a supported format but does not decode (corrupt or truncated)."""

    code = "CORRUPT_MEDIA"


class MediaRejectedError(MediaError):
    """The moderation hook rejected the media; `reason` says why."""

    code = "MEDIA_REJECTED"

    def __init__(self, reason: str) -> None:
        super().__init__(f"media rejected by moderation: {reason}")
        self.reason = reason


class InvalidSignatureError(MediaError, PermissionError):
    """A local-store URL whose signature is missing, wrong or expired."""

    code = "INVALID_SIGNATURE"


class WorkerCrashedError(MediaError):
    """The worker process died mid-job (killed, out of memory); the job can be retried."""

    code = "WORKER_CRASHED"
    retryable = True


class JobBusyError(MediaError):
    """Another worker on this host is running the same job right now; retry later."""

    code = "JOB_BUSY"
    retryable = True


class JobTimeoutError(MediaError, TimeoutError):
    """A job ran past `media.job_timeout_seconds` and was aborted; nothing was published."""

    code = "JOB_TIMEOUT"
    retryable = True


# Errors recorded in a job's result manifest are rebuilt from their code on a retry.
_BY_CODE = {
    cls.code: cls
    for cls in (
        MediaTooLargeError,
        DecompressionBombError,
        UnsupportedMediaError,
        CorruptMediaError,
        ChecksumMismatchError,
    )
}


def error_from_code(code: str, message: str) -> MediaError:
    """Rebuild a permanent error recorded in a manifest (see `process.py`)."""
    if code == MediaRejectedError.code:
        return MediaRejectedError(message)
    return _BY_CODE.get(code, MediaError)(message)

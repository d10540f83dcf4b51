"""Media: uploads, object storage (S3 or a local directory), transcoding and their job handlers.

The public API (everything the GraphQL layer and job handlers need):

- stores: `open_store(settings.media)` -> `ObjectStore` (`S3Store` | `LocalStore`);
  `handle_local_request` serves the local store's signed URLs; `sign_url`/`verify_signed_request`.
- uploads: `UploadService(store, settings.media)` with `start_upload`, `upload_status`,
  `complete_upload`, `abort_upload`, `abort_stale_uploads`; `is_upload_id` (the ids' shape).
- processing: `process_media(settings.media, media_key, kind, options)` -> `MediaResult`
  (runs on a worker-process pool; idempotent), `read_result`, `shutdown_workers`.
- moderation: `Allow`, `Reject`, configured by `media.moderation_hook`.
- errors: `MediaError` and its subclasses.

This package never imports tao, resolvers, schema, server, strawberry or aiohttp.
"""

from media_pipeline.archive import member, stored_chunks, write_zip
from media_pipeline.errors import (
    ChecksumMismatchError,
    CorruptMediaError,
    DecompressionBombError,
    InvalidSignatureError,
    InvalidUploadError,
    JobBusyError,
    JobTimeoutError,
    MediaError,
    MediaRejectedError,
    MediaTooLargeError,
    MissingPartsError,
    StorageError,
    UnsupportedMediaError,
    UploadAlreadyCompletedError,
    UploadFailedError,
    UploadNotFoundError,
    WorkerCrashedError,
)
from media_pipeline.local import LocalStore, handle_local_request
from media_pipeline.models import MediaResult, ProcessOptions, Variant
from media_pipeline.moderation import Allow, Reject
from media_pipeline.process import process_media, read_result, run_job, shutdown_workers
from media_pipeline.s3 import S3Store
from media_pipeline.signing import sign_url, verify_signed_request
from media_pipeline.store import ObjectStore, open_blocking_store, open_store
from media_pipeline.uploads import CompletedUpload, PartUrl, UploadService, UploadStatus, UploadTicket, is_upload_id

__all__ = [
    "Allow",
    "ChecksumMismatchError",
    "CompletedUpload",
    "CorruptMediaError",
    "DecompressionBombError",
    "InvalidSignatureError",
    "InvalidUploadError",
    "JobBusyError",
    "JobTimeoutError",
    "LocalStore",
    "MediaError",
    "MediaRejectedError",
    "MediaResult",
    "MediaTooLargeError",
    "MissingPartsError",
    "ObjectStore",
    "member",
    "stored_chunks",
    "write_zip",
    "PartUrl",
    "ProcessOptions",
    "Reject",
    "S3Store",
    "StorageError",
    "UnsupportedMediaError",
    "UploadAlreadyCompletedError",
    "UploadFailedError",
    "UploadNotFoundError",
    "UploadService",
    "UploadStatus",
    "UploadTicket",
    "Variant",
    "WorkerCrashedError",
    "handle_local_request",
    "is_upload_id",
    "open_blocking_store",
    "open_store",
    "process_media",
    "read_result",
    "run_job",
    "shutdown_workers",
    "sign_url",
    "verify_signed_request",
]

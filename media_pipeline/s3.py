"""The S3 backend (boto3): AWS S3, MinIO, or moto's server in tests.

Owns the translation of botocore errors into `StorageError` (missing keys and missing
multipart uploads read as None instead). boto3 blocks, so the async `S3Store` runs every
call on its thread pool; worker processes use `S3Backend` directly.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from config.settings import MediaSettings
from media_pipeline.errors import StorageError
from media_pipeline.store import CHUNK, BlockingStore, ObjectInfo, ObjectStore, PartInfo, PendingMultipart

_MISSING = {"NoSuchKey", "404", "NotFound", "NoSuchUpload"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def _translate(what: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        raise StorageError(f"S3 {what} failed ({_code(exc)}); retry later") from exc
    except BotoCoreError as exc:
        raise StorageError(f"S3 {what} failed ({type(exc).__name__}); retry later") from exc


class S3Backend(BlockingStore):
    def __init__(self, settings: MediaSettings) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket
        self.region = settings.s3_region
        self._transfer = TransferConfig(multipart_threshold=64 * 1024 * 1024, max_concurrency=4)

    @functools.cached_property
    def client(self):
        """Built on first use, on a store thread: making a boto3 client reads config files (blocking).
        boto3 clients are thread-safe, so one is shared by all of the store's threads."""
        settings = self.settings
        config = Config(
            signature_version="s3v4",
            connect_timeout=settings.s3_connect_timeout,
            read_timeout=settings.s3_read_timeout,
            retries={"max_attempts": settings.s3_max_attempts, "mode": "standard"},
            max_pool_connections=settings.io_threads + 4,
            # Path-style for custom endpoints (MinIO, moto) that have no per-bucket DNS.
            s3={"addressing_style": "path" if settings.s3_endpoint_url else "auto"},
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url or None,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key or None,
            aws_secret_access_key=settings.s3_secret_key or None,
            config=config,
        )

    def ensure_ready(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise StorageError(f"S3 bucket {self.bucket!r} is not reachable ({_code(exc)})") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 endpoint unreachable ({type(exc).__name__}); check media.s3_endpoint_url") from exc
        kwargs: dict = {"Bucket": self.bucket}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as exc:
            if _code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise StorageError(f"cannot create S3 bucket {self.bucket!r} ({_code(exc)})") from exc

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        with _translate("put"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        with _translate("upload"):
            self.client.upload_file(
                str(path), self.bucket, key, ExtraArgs={"ContentType": content_type}, Config=self._transfer
            )

    def get_bytes(self, key: str) -> bytes | None:
        with _translate("get"):
            try:
                return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return None
                raise

    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        with _translate("get"):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                yield from body.iter_chunks(chunk_size)
            finally:
                body.close()

    def download(self, key: str, path: Path) -> None:
        with _translate("download"):
            self.client.download_file(self.bucket, key, str(path), Config=self._transfer)

    def head(self, key: str) -> ObjectInfo | None:
        with _translate("head"):
            try:
                r = self.client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return None
                raise
        return ObjectInfo(key, int(r["ContentLength"]), r.get("ContentType", ""))

    def delete(self, keys: list[str]) -> None:
        with _translate("delete"):
            for i in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[i : i + 1000]]
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        with _translate("list"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(o["Key"] for o in page.get("Contents", []))
        return keys

    def presign_get(self, key: str, expires_in: int) -> str:
        with _translate("presign"):
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
            )

    def create_multipart(self, key: str, content_type: str, checksums: bool) -> str:
        kwargs = {"ChecksumAlgorithm": "SHA256"} if checksums else {}
        with _translate("create multipart upload"):
            r = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType=content_type, **kwargs)
        return r["UploadId"]

    def presign_part(self, key: str, multipart_id: str, number: int, expires_in: int, sha256_b64: str | None) -> str:
        params = {"Bucket": self.bucket, "Key": key, "UploadId": multipart_id, "PartNumber": number}
        if sha256_b64:
            # Signed into the URL: S3 refuses the PUT unless the header carries exactly this
            # value, and refuses a body that does not hash to it.
            params["ChecksumSHA256"] = sha256_b64
        with _translate("presign"):
            return self.client.generate_presigned_url("upload_part", Params=params, ExpiresIn=expires_in)

    def upload_part(self, key: str, multipart_id: str, number: int, body: bytes) -> PartInfo:
        with _translate("upload part"):
            r = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=multipart_id, PartNumber=number,
                                        Body=body)
        return PartInfo(number, len(body), r["ETag"], r.get("ChecksumSHA256"))

    def list_parts(self, key: str, multipart_id: str) -> list[PartInfo] | None:
        parts: list[PartInfo] = []
        with _translate("list parts"):
            try:
                pages = self.client.get_paginator("list_parts").paginate(
                    Bucket=self.bucket, Key=key, UploadId=multipart_id
                )
                for page in pages:
                    for p in page.get("Parts", []):
                        parts.append(PartInfo(p["PartNumber"], p["Size"], p["ETag"], p.get("ChecksumSHA256")))
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return None
                raise
        return sorted(parts, key=lambda p: p.number)

    def complete_multipart(self, key: str, multipart_id: str, parts: list[PartInfo]) -> None:
        listed = []
        for p in parts:
            entry = {"PartNumber": p.number, "ETag": p.etag}
            if p.sha256_b64:
                entry["ChecksumSHA256"] = p.sha256_b64
            listed.append(entry)
        with _translate("complete multipart upload"):
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=multipart_id, MultipartUpload={"Parts": listed}
            )

    def abort_multipart(self, key: str, multipart_id: str) -> None:
        with _translate("abort multipart upload"):
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=multipart_id)
            except ClientError as exc:
                if _code(exc) not in _MISSING:
                    raise

    def list_multipart(self, prefix: str) -> list[PendingMultipart]:
        out: list[PendingMultipart] = []
        with _translate("list multipart uploads"):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                for u in page.get("Uploads", []):
                    out.append(PendingMultipart(u["Key"], u["UploadId"], u["Initiated"].timestamp()))
        return out


class S3Store(ObjectStore):
    """The async S3 store: `S3Backend` on a thread pool."""

    def __init__(self, settings: MediaSettings) -> None:
        super().__init__(
            S3Backend(settings), settings.io_threads, settings.cdn_base_url, settings.url_ttl_seconds
        )

"""Processing jobs: probe, moderate, render variants, publish; run in worker processes.

`run_job` is the blocking job (a worker process, or `python -m media_pipeline.process`);
`process_media` is its async entry point, which runs it on a process pool so no CPU work ever
touches the caller's event loop.

Idempotence and resumability: every output is rendered into a per-job scratch directory,
then uploaded under a deterministic key (`media/<id>/v/<name>.<ext>`); each upload is atomic in
the store. The job's result manifest (`media/<id>/result.json`) is written last: its presence is
what "done" means. A retry of a finished job returns the manifest without work; a retry of a
killed job wipes the old scratch dir and redoes everything, overwriting any variants already
uploaded with identical content, so nothing half-written is ever published and the retry
finishes. A permanent failure (corrupt file, rejected by moderation) is recorded in the same
manifest, so a retry fails the same way at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import multiprocessing
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from config.observability.metrics import MEDIA_SECONDS
from config.settings import MediaSettings, resolve_path
from media_pipeline.audio import transcode_audio
from media_pipeline.crops import FocalPoint, poster_crops
from media_pipeline.errors import (
    JobBusyError,
    JobTimeoutError,
    MediaError,
    MediaRejectedError,
    WorkerCrashedError,
    error_from_code,
)
from media_pipeline.hls import package_hls
from media_pipeline.images import render_image
from media_pipeline.models import MediaResult, ProcessOptions, Variant
from media_pipeline.moderation import Reject, load_check
from media_pipeline.placeholder import placeholder_for
from media_pipeline.probe import ProbeResult, probe_file
from media_pipeline.store import BlockingStore, open_blocking_store
from media_pipeline.video import transcode_video


def media_prefix(media_key: str) -> str:
    """`media/<id>` for the source key `media/<id>/source`."""
    return media_key.rsplit("/", 1)[0]


def result_key(media_key: str) -> str:
    return f"{media_prefix(media_key)}/result.json"


def variant_key(media_key: str, name: str, ext: str) -> str:
    return f"{media_prefix(media_key)}/v/{name}.{ext}"


def work_root(settings: MediaSettings) -> Path:
    return resolve_path(settings.work_dir) if settings.work_dir else Path(tempfile.gettempdir()) / "taogram-media"


def job_dir(settings: MediaSettings, media_key: str) -> Path:
    """The job's scratch dir: deterministic, so a retry finds (and clears) a killed attempt's files."""
    return work_root(settings) / ("job-" + hashlib.sha256(media_key.encode()).hexdigest()[:24])


def read_result(store: BlockingStore, media_key: str) -> MediaResult | None:
    """The finished result, None if the job has not finished, or the recorded permanent error raised."""
    raw = store.get_bytes(result_key(media_key))
    if raw is None:
        return None
    manifest = json.loads(raw)
    if manifest["status"] == "failed":
        if manifest["code"] == MediaRejectedError.code:
            raise MediaRejectedError(manifest["reason"])
        raise error_from_code(manifest["code"], manifest["message"])
    return MediaResult.from_dict(manifest["result"])


def run_job(
    settings: MediaSettings,
    media_key: str,
    kind: str,
    options: ProcessOptions = ProcessOptions(),
    progress: Callable[[float], None] | None = None,
) -> MediaResult:
    """Process one uploaded media to completion (blocking). Safe to call any number of times."""
    store = open_blocking_store(settings)
    done = read_result(store, media_key)
    if done is not None:
        return done
    work = job_dir(settings, media_key)
    with _job_lock(work), _deadline(settings.job_timeout_seconds) as deadline:
        # Re-check under the lock: a concurrent run may have finished meanwhile.
        done = read_result(store, media_key)
        if done is not None:
            return done
        shutil.rmtree(work, ignore_errors=True)
        (work / "out").mkdir(parents=True)
        return _run_locked(store, settings, media_key, kind, options, progress, work, deadline)


@contextlib.contextmanager
def _job_lock(work: Path) -> Iterator[None]:
    """One run of a job per host at a time (the scratch dir is shared by design). The kernel
    drops the lock when its holder dies, so a SIGKILLed worker never blocks its retry."""
    work.parent.mkdir(parents=True, exist_ok=True)
    lock = work.with_suffix(".lock")
    with open(lock, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobBusyError("this media is being processed by another worker; retry later") from None
        try:
            yield
        finally:
            # Removed while still held, so lock files do not pile up (one per media otherwise).
            lock.unlink(missing_ok=True)


class _Deadline:
    """Whether the job's time is up. The SIGALRM handler raises JobTimeoutError at once, but an
    exception raised inside a C callback (PyAV's log callback, a finaliser) can be swallowed, so
    the job also checks the flag before it publishes anything: a late job never publishes."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False

    def error(self) -> JobTimeoutError:
        return JobTimeoutError(f"the job ran longer than {self.seconds:g}s and was aborted; it will be retried")

    def check(self) -> None:
        if self.expired:
            raise self.error()


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[_Deadline]:
    """Abort the job (JobTimeoutError) after `seconds`, via SIGALRM in the worker's main thread.

    PyAV and Pillow return to Python between frames/strips, so the handler runs promptly. Off
    the main thread (a job run in a thread) no deadline is set."""
    deadline = _Deadline(seconds)
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield deadline
        return

    def expire(signum, frame):
        deadline.expired = True
        raise deadline.error()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield deadline
    except MediaError as exc:
        # The alarm may surface wrapped (a StorageError around the OSError it interrupted):
        # report it as what it is, a retryable timeout, never as a permanent failure.
        if deadline.expired and not isinstance(exc, JobTimeoutError):
            raise deadline.error() from exc
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _run_locked(store, settings, media_key, kind, options, progress, work: Path, deadline: _Deadline) -> MediaResult:
    try:
        src = work / "source"
        store.download(media_key, src)
        try:
            probe = probe_file(src, kind, settings)
            decision = load_check(settings.moderation_hook)(probe, src)
            if isinstance(decision, Reject):
                raise MediaRejectedError(decision.reason)
            files = _render(src, probe, settings, options, work / "out", progress)
        except MediaError as exc:
            if not exc.retryable and not deadline.expired:
                _record_failure(store, media_key, exc)
            raise
        deadline.check()
        variants = []
        for f in files:
            key = variant_key(media_key, f.name, f.ext)
            store.put_file(key, f.path, f.content_type)
            if f.listed:
                size = f.path.stat().st_size
                variants.append(Variant(f.name, f.width, f.height, f.content_type, key, size, f.codecs))
        ph = placeholder_for(files)
        result = MediaResult(kind, probe.width, probe.height, round(probe.duration, 3), variants,
                             ph.blurhash if ph else "", ph.dominant_color if ph else "")
        deadline.check()
        # Written last: the manifest's presence is what marks the job done.
        manifest = {"status": "ready", "result": result.to_dict()}
        store.put_bytes(result_key(media_key), json.dumps(manifest).encode(), "application/json")
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _render(src: Path, probe: ProbeResult, settings, options: ProcessOptions, out: Path, progress):
    focal = FocalPoint(*options.focal_point) if options.focal_point else FocalPoint()
    if probe.kind == "image":
        return render_image(src, probe, settings, options.share_location, out, focal)
    if probe.kind == "audio":
        return transcode_audio(src, probe, settings, out)
    files = transcode_video(src, probe, settings, out, progress)
    files += poster_crops(files, settings, focal, out)
    if settings.hls:
        rungs = [f for f in files if f.codecs.startswith("avc1")]  # AV1 in MPEG-TS is no standard: MP4 only
        files += package_hls(rungs, out, settings.gop_seconds * 2, probe.fps)
    return files


def _record_failure(store: BlockingStore, media_key: str, exc: MediaError) -> None:
    manifest = {"status": "failed", "code": exc.code, "message": str(exc)}
    if isinstance(exc, MediaRejectedError):
        manifest["reason"] = exc.reason
    store.put_bytes(result_key(media_key), json.dumps(manifest).encode(), "application/json")


# -- the process pool -------------------------------------------------------------------------

_pool: ProcessPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _get_pool(settings: MediaSettings) -> ProcessPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        return _get_pool_locked(settings)


def _get_pool_locked(settings: MediaSettings) -> ProcessPoolExecutor:
    global _pool, _pool_size
    if _pool is None or _pool_size != settings.workers:
        if _pool is not None:
            _pool.shutdown(wait=False)
        # spawn: a forked child would inherit the parent's event loop, threads and sockets.
        # Recycling children bounds any leak in the native decoders.
        _pool = ProcessPoolExecutor(
            max_workers=settings.workers, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=100
        )
        _pool_size = settings.workers
    return _pool


async def in_worker(settings: MediaSettings, fn: Callable, *args):
    """Run `fn(*args)` on the worker pool; a crashed worker becomes `WorkerCrashedError` (retryable)."""
    global _pool
    # Creating the pool starts processes and submitting writes to a pipe: both off the loop.
    pool = await asyncio.to_thread(_get_pool, settings)
    try:
        future = await asyncio.to_thread(pool.submit, fn, *args)
        return await asyncio.wrap_future(future)
    except BrokenProcessPool as exc:
        if _pool is pool:
            _pool = None
        raise WorkerCrashedError("the media worker process died (killed or out of memory); retry the job") from exc


async def process_media(
    settings: MediaSettings, media_key: str, kind: str, options: ProcessOptions = ProcessOptions()
) -> MediaResult:
    """Process an uploaded media (from `complete_upload`) on the worker pool; idempotent."""
    began, outcome = time.perf_counter(), "failed"
    try:
        result = await in_worker(settings, run_job, settings, media_key, kind, options)
        outcome = "ok"
        return result
    finally:  # observability: processing time by kind
        MEDIA_SECONDS.labels(kind, outcome).observe(time.perf_counter() - began)


def shutdown_workers() -> None:
    """Stop the worker pool (app shutdown, tests)."""
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
        _pool = None


def _main(argv: list[str] | None = None) -> None:
    """`python -m media_pipeline.process MEDIA_KEY KIND`: run one job in this process (ops, tests)."""
    import argparse

    from config import load_settings_or_exit

    parser = argparse.ArgumentParser(description=_main.__doc__)
    parser.add_argument("media_key")
    parser.add_argument("kind", choices=["image", "video", "audio"])
    parser.add_argument("--share-location", action="store_true")
    args = parser.parse_args(argv)
    result = run_job(load_settings_or_exit().media, args.media_key, args.kind, ProcessOptions(args.share_location))
    print(json.dumps(result.to_dict(), indent=2))


if __name__ == "__main__":
    _main()

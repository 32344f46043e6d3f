"""Where uploads are parsed: in processes of their own, so one request's parts use every core.

Parsing an upload (pydicom's header read, the strict checks, the DICOM JSON of the header) is
CPU-bound Python: in threads it holds the GIL, so a STOW-RS request of 200 instances, or a
bulk import, runs on one core whatever the machine has. A small pool of worker processes
parses from the staged file's path (the bytes never cross the pipe, only the result does)
while the calling thread goes on storing and indexing. With ``parse_processes = 0`` files are
parsed in the calling thread.

A parser process that dies (killed for memory, or crashed) breaks the pool: the uploads in it
are told to retry (503) and the pool is made again for the next ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from dicom_file_service.dicom.header_index import encode_header
from dicom_file_service.dicom.parse import DEFAULT_MAX_INFLATED, ParsedInstance, parse_file
from dicom_file_service.dicom.query_keys import QueryKeys, query_keys
from dicom_file_service.dicom.render import tiny_image
from dicom_file_service.errors import ParserUnavailable, ParseTimeout
from dicom_file_service.service.parent_watch import watch_parent

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class PreparedUpload:
    """A parsed upload with its index values made: the stored header (JSON and span index)
    and the query keys. Made where it was parsed, so that work leaves the calling process
    too and only bytes cross the pipe, not the header as nested objects."""

    parsed: ParsedInstance  # without its header: that is ``header_json`` now
    header_json: bytes
    header_index: bytes
    keys: QueryKeys


def parse_upload(path: str, max_inflated_bytes: int = DEFAULT_MAX_INFLATED) -> PreparedUpload:
    """Bulk values are named by location alone: routes are added when answering."""
    parsed = parse_file(path, bulk_data_uri_prefix="", max_inflated_bytes=max_inflated_bytes)
    header_json, header_index = encode_header(parsed.header)
    keys = query_keys(parsed.header)
    return PreparedUpload(dataclasses.replace(parsed, header={}), header_json, header_index, keys)


def _warm_up() -> None:
    """In a new parser process: parse a tiny image, so that pydicom's lazy imports are paid
    at start-up, not by the first parts of a STOW-RS request (half a second, measured)."""
    with tempfile.NamedTemporaryFile(suffix=".dcm") as f:
        f.write(tiny_image())
        f.flush()
        parse_upload(f.name)


def _end_with_parent(parent: int) -> None:
    """In a new parser process: end when the process that started it has gone (a parser
    waits on the pool's queue, whose pipe its siblings hold open too: it would not see)."""
    watch_parent(parent, lambda: os._exit(0))


class Parsers:
    def __init__(
        self,
        processes: int,
        max_inflated_bytes: int = DEFAULT_MAX_INFLATED,
        timeout_seconds: float | None = None,
        *,
        single_in_thread: bool = False,
    ) -> None:
        self.processes = processes
        self.single_in_thread = single_in_thread
        self.max_inflated_bytes = max_inflated_bytes
        self.timeout_seconds = timeout_seconds
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def parse(self, path: Path, *, one_of_many: bool = False) -> PreparedUpload:
        """``one_of_many``: a part of a request that carries several (STOW-RS), whose parts
        are stored concurrently: the case where parsing in processes uses another core."""
        if self.processes == 0 or (self.single_in_thread and not one_of_many):
            return parse_upload(str(path), self.max_inflated_bytes)
        return self.run(parse_upload, str(path), self.max_inflated_bytes)

    def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in a parser process (in this thread when there are none): other
        CPU-bound work on one file (a de-identified copy), under the same time bound.
        ``function`` and its arguments cross the pipe: a module-level function, picklable
        arguments."""
        if self.processes == 0:
            return function(*args)
        pool = self._current()
        future = pool.submit(function, *args)
        try:
            return future.result(timeout=self.timeout_seconds)
        except FutureTimeout as exc:
            # Ingest's own bound: a file that keeps a parser busy this long is refused before
            # anything is stored, and the busy process is stopped (its pool made again).
            self._stop(pool)
            log.error("a parse ran past its time; the parser processes are made again")
            raise ParseTimeout(
                f"the file took more than {self.timeout_seconds:g} s to parse "
                "(setting DICOM_FS_PARSE_TIMEOUT_SECONDS): not stored"
            ) from exc
        except BrokenProcessPool as exc:
            self._replace(pool)
            log.error("a parser process stopped; its pool is made again")
            raise ParserUnavailable(
                "a parser process stopped while this upload was read; send it again"
            ) from exc

    def start(self) -> None:
        """Start the processes now, so the first upload does not wait for them."""
        if self.processes:
            pool = self._current()
            for future in [pool.submit(_warm_up) for _ in range(self.processes)]:
                future.result()

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn: a fork of a process with running threads may inherit held locks.
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(
                    self.processes,
                    mp_context=context,
                    initializer=_end_with_parent,
                    initargs=(os.getpid(),),
                )
            return self._pool

    def _stop(self, pool: ProcessPoolExecutor) -> None:
        """Stop every process of ``pool`` (one of them is stuck) and start afresh."""
        processes = list(getattr(pool, "_processes", {}).values())
        self._replace(pool)
        for process in processes:
            with contextlib.suppress(Exception):
                process.kill()

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

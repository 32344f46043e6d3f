"""The ``dicom-file-service`` command: serve, import, deidentify, render, db upgrade and
reindex."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import click

from dicom_file_service.errors import ServiceError
from dicom_file_service.settings import Settings, available_cores

_ctx = None  # the per-process service context of an import worker


@click.group()
@click.version_option(package_name="dicom-file-service")
def main() -> None:
    """Store DICOM files; serve their header attributes and browser-ready renderings."""


def _settings_for(data_dir: Path | None) -> Settings:
    """The settings of this run; ``--data-dir`` reaches worker processes via the environment."""
    if data_dir is not None:
        os.environ["DICOM_FS_DATA_DIR"] = str(data_dir.resolve())
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def _migrate(settings: Settings) -> None:
    """Apply migrations once, here, so that workers starting together never race."""
    from dicom_file_service.service.schema import upgrade_schema

    upgrade_schema(settings)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Embedded storage root [default: ./data, or DICOM_FS_DATA_DIR]",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 64),
    help="Worker processes [default: one per core, or DICOM_FS_WORKERS]",
)
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--dicom-port",
    default=None,
    type=click.IntRange(0, 65535),
    help="DICOM listener's port on the same host; 0: none [default: 11112, or DICOM_FS_DICOM_PORT]",
)
def serve(
    host: str,
    port: int,
    data_dir: Path | None,
    workers: int | None,
    log_level: str,
    dicom_port: int | None,
) -> None:
    """Run the HTTP service and the DICOM listener (embedded default: SQLite + local disk
    under ./data)."""
    import uvicorn

    from dicom_file_service.cli.network import start_listener_process, stop_listener_process

    if dicom_port is not None:
        os.environ["DICOM_FS_DICOM_PORT"] = str(dicom_port)
    settings = _settings_for(data_dir)
    if workers is None:
        workers = settings.workers
    # The workers' own settings size their pools (render threads, connections, parser
    # processes) from the worker count: they read it from here.
    os.environ["DICOM_FS_WORKERS"] = str(workers)
    # Metrics are counted per process and summed at /metrics: each serve has a directory of
    # its own, emptied now, before anything (the metrics module above all) is imported.
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    counts = Path(given) if given else Path(tempfile.mkdtemp(prefix="dicom-fs-metrics-"))
    shutil.rmtree(counts, ignore_errors=True)
    counts.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(counts)
    _migrate(settings)

    served = _stop_reaches_uvicorn()
    listener = start_listener_process(settings, host)
    try:
        uvicorn.run(
            "dicom_file_service.api.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            http="dicom_file_service.api.direct_answers:DirectAnsweringProtocol",
            log_level=log_level,
            access_log=False,
            # The app judges proxy headers itself (api.forwarded, DICOM_FS_TRUSTED_PROXIES);
            # uvicorn's would trust its own list and rewrite the peer address that judgment needs.
            proxy_headers=False,
            timeout_graceful_shutdown=int(settings.shutdown_grace_seconds + 0.999),
        )
    finally:
        served.set()
        stop_listener_process(listener)
        if not given:
            shutil.rmtree(counts, ignore_errors=True)
    if listener is not None and listener.failure is not None:
        raise click.ClickException(listener.failure)


def _stop_reaches_uvicorn() -> threading.Event:
    """A SIGTERM that comes while uvicorn starts (the DICOM listener failed, or serve is being
    stopped) must stop it as one that comes later does, by uvicorn's own graceful shutdown:
    until uvicorn has taken the signal over it is noted here and sent again every half
    second, until serve's uvicorn has returned (set the event returned)."""
    asked, served = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: asked.set())

    def send_again() -> None:
        asked.wait()
        while not served.wait(0.5):
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=send_again, daemon=True, name="stop-until-served").start()
    return served


def _import_worker_init() -> None:
    global _ctx
    from dicom_file_service.service.context import ServiceContext

    # Each import job is a process already: it parses in its own thread, no pool of its own.
    _ctx = ServiceContext.create(Settings(parse_processes=0), migrate=False)


def _import_one(path: str) -> tuple[str, str, str]:
    """(path, outcome, detail) with outcome stored | present | rejected."""
    from dicom_file_service.service.ingest import ingest_path

    assert _ctx is not None
    try:
        result = ingest_path(_ctx, Path(path))
    except ServiceError as exc:
        return path, "rejected", f"{exc.code}: {exc.detail}"
    except OSError as exc:
        return path, "rejected", f"unreadable: {exc.strerror}"
    return path, ("stored" if result.created else "present"), result.record.file_id


@main.command(name="import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--jobs", "-j", default=available_cores(), show_default=True, type=int)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar")
def import_(paths: tuple[Path, ...], data_dir: Path | None, jobs: int, quiet: bool) -> None:
    """Import DICOM files and folders (recursively), in parallel."""
    from tqdm import tqdm

    _migrate(_settings_for(data_dir))

    files = sorted(_walk(paths))
    counts: Counter[str] = Counter()
    rejected: list[tuple[str, str]] = []
    with ProcessPoolExecutor(max_workers=max(1, jobs), initializer=_import_worker_init) as pool:
        futures = [pool.submit(_import_one, str(f)) for f in files]
        with tqdm(total=len(futures), unit="file", disable=quiet, file=sys.stderr) as bar:
            for fut in as_completed(futures):
                path, outcome, detail = fut.result()
                counts[outcome] += 1
                if outcome == "rejected":
                    rejected.append((path, detail))
                bar.update(1)
    click.echo(
        f"{len(files)} files: {counts['stored']} stored, {counts['present']} already present "
        f"(skipped), {counts['rejected']} rejected"
    )
    for path, detail in sorted(rejected):
        click.echo(f"  rejected {path}: {detail}", err=True)
    if rejected and not (counts["stored"] or counts["present"]):
        sys.exit(1)


def _walk(paths: tuple[Path, ...]) -> list[Path]:
    found: list[Path] = []
    for p in paths:
        if p.is_file():
            found.append(p)
            continue
        for root, dirs, names in os.walk(p):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found.extend(Path(root) / n for n in names if not n.startswith("."))
    return found


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--frame", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--window-center", type=float, default=None)
@click.option("--window-width", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--width", type=click.IntRange(min=1), default=None)
@click.option("--height", type=click.IntRange(min=1), default=None)
def render(
    file: Path,
    output: Path,
    frame: int,
    window_center: float | None,
    window_width: float | None,
    width: int | None,
    height: int | None,
) -> None:
    """Render one frame of a DICOM file to PNG, as the service would."""
    from dicom_file_service.dicom.render import RenderOptions, render_png

    if (window_center is None) != (window_width is None):
        raise click.UsageError("give both --window-center and --window-width, or neither")
    options = RenderOptions(
        frame=frame,
        window_center=window_center,
        window_width=window_width,
        width=width,
        height=height,
    )
    try:
        settings = Settings()
        png = render_png(
            file,
            options,
            max_pixels=settings.max_decoded_pixels,
            max_bytes=settings.max_render_bytes,
        )
    except ServiceError as exc:
        raise click.ClickException(f"{exc.code}: {exc.detail}") from exc
    output.write_bytes(png)
    click.echo(f"wrote {output} ({len(png)} bytes)")


@main.command(name="sweep")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option(
    "--older-than",
    type=click.FloatRange(min=0),
    default=None,
    help="grace period in seconds [default: DICOM_FS_PENDING_UPLOAD_TTL_SECONDS]",
)
def sweep_command(data_dir: Path | None, older_than: float | None) -> None:
    """Remove abandoned uploads and blobs no index row refers to (left by a crash)."""
    from dicom_file_service.service.context import ServiceContext
    from dicom_file_service.service.sweep import sweep

    ctx = ServiceContext.create(_settings_for(data_dir))
    try:
        report = sweep(ctx, older_than_seconds=older_than)
    finally:
        ctx.close()
    if older_than is not None and report.grace_seconds > older_than:
        click.echo(
            f"--older-than {older_than:g} raised to {report.grace_seconds:g} s "
            "(DICOM_FS_SWEEP_MIN_AGE_SECONDS): younger blobs may belong to uploads in flight",
            err=True,
        )
    click.echo(
        f"checked {report.blobs_checked} blobs: removed {report.orphans_removed} unreferenced, "
        f"{report.staged_removed} abandoned uploads (older than {report.grace_seconds:g} s)"
    )


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
def worker(data_dir: Path | None) -> None:
    """Run background jobs until SIGTERM: renderings (DICOM_FS_PRERENDER) and clients' jobs
    (sending to and retrieving from modalities, started over REST).

    On PostgreSQL, any number of workers on any hosts share procrastinate's durable queue; on
    the embedded default, ``serve`` renders in-process and a worker is optional.
    """
    import logging

    from dicom_file_service.service.context import ServiceContext
    from dicom_file_service.service.prerender import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    ctx = ServiceContext.create(_settings_for(data_dir), migrate=False)
    try:
        run_worker(ctx)
    finally:
        ctx.close()


@main.group()
def db() -> None:
    """Index database administration."""


@db.command(name="upgrade")
def db_upgrade() -> None:
    """Apply pending migrations (safe to run from many hosts at once on PostgreSQL)."""
    _migrate(Settings())
    click.echo("index schema is up to date")


@db.command(name="reindex")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--max-batches",
    default=None,
    type=click.IntRange(min=1),
    help="Stop after this many batches (the next run continues) [default: to the end]",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar")
def db_reindex(
    data_dir: Path | None, batch_size: int, max_batches: int | None, quiet: bool
) -> None:
    """Index the stored instances for DICOM_FS_EXTRA_QUERY_KEYS, resuming where the last
    run stopped; each batch commits with its cursor."""
    from tqdm import tqdm

    from dicom_file_service.service.context import ServiceContext
    from dicom_file_service.service.extra_keys import reindex

    settings = _settings_for(data_dir)
    _migrate(settings)
    ctx = ServiceContext.create(settings, migrate=False)
    bar = tqdm(unit="instance", disable=quiet, file=sys.stderr)
    try:
        report = reindex(
            ctx,
            batch_size=batch_size,
            max_batches=max_batches,
            on_total=lambda n: bar.reset(total=n),
            on_batch=bar.update,
        )
    except ServiceError as exc:
        raise click.ClickException(exc.detail) from exc
    finally:
        bar.close()
        ctx.close()
    if not report.tags:
        click.echo("no extra query keys to index (DICOM_FS_EXTRA_QUERY_KEYS)")
        return
    where = f"after instance {report.resumed_after}" if report.resumed_after else "from the start"
    state = "complete" if report.complete else "not complete: run it again to continue"
    click.echo(
        f"indexed {report.instances} instances for {', '.join(report.tags)} ({where}); {state}"
    )


@main.group()
def ohif() -> None:
    """The OHIF viewer, served under /ohif/ on this service's DICOMweb."""


@ohif.command(name="install")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to put the build [default: <data-dir>/ohif, or DICOM_FS_OHIF_DIR]",
)
@click.option("--version", "version", default=None, help="The @ohif/app version (npm)")
def ohif_install(data_dir: Path | None, directory: Path | None, version: str | None) -> None:
    """Fetch the OHIF viewer's build with npm and install it for /ohif/."""
    from dicom_file_service.api.urls import OHIF_MOUNT
    from dicom_file_service.service import ohif as viewer

    settings = _settings_for(data_dir)
    target = directory or settings.resolved_ohif_dir()
    wanted = version or viewer.OHIF_VERSION
    click.echo(f"fetching @ohif/app@{wanted} with npm ...")
    try:
        installed = viewer.install(target, OHIF_MOUNT, wanted)
    except ServiceError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(
        f"OHIF {wanted} installed in {installed}; served under {OHIF_MOUNT} (restart not needed)"
    )


# The DICOM network's commands (`dimse`) and de-identification's, in modules of their own.
from dicom_file_service.cli import deidentify as _deidentify  # noqa: E402
from dicom_file_service.cli import network as _network  # noqa: E402

__all__ = ["_deidentify", "_network", "main"]

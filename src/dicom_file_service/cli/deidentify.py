"""``dicom-file-service deidentify``: research copies of files and folders, without a server
(PS3.15 Annex E; ``service.deidentify``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dicom_file_service.cli import _settings_for, _walk, main


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--option",
    "options",
    multiple=True,
    help="A PS3.15 option, e.g. retain_longitudinal_modified_dates (repeatable)",
)
@click.option(
    "--secret-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The pseudonyms' key; default DICOM_FS_DEID_SECRET, else <data-dir>/deid.key",
)
@click.option(
    "--pixel-region",
    "regions",
    multiple=True,
    help="With --option clean_pixel_data: x0,y0,x1,y1 blanked in every frame (repeatable)",
)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar")
def deidentify(
    paths: tuple[Path, ...],
    output: Path,
    options: tuple[str, ...],
    secret_file: Path | None,
    regions: tuple[str, ...],
    data_dir: Path | None,
    quiet: bool,
) -> None:
    """De-identified copies of DICOM files and folders (PS3.15 Annex E), written to OUTPUT
    as <new SOP Instance UID>.dcm, without a server."""
    from tqdm import tqdm

    from dicom_file_service.dicom.deid.engine import OFFERED, Request
    from dicom_file_service.dicom.deid.pseudonyms import Pseudonyms
    from dicom_file_service.service.deidentify import deid_key, deidentify_file

    chosen = frozenset(options)
    wrong = sorted(chosen - OFFERED)
    if wrong:
        raise click.BadParameter(
            f"{', '.join(wrong)}: not an option offered (offered: {', '.join(sorted(OFFERED))})",
            param_hint="--option",
        )
    rectangles = tuple(_region(r) for r in regions)
    if ("clean_pixel_data" in chosen) != bool(rectangles):
        raise click.BadParameter(
            "--option clean_pixel_data and --pixel-region go together", param_hint="--pixel-region"
        )
    request = Request(chosen, pixel_regions=rectangles)
    key = secret_file.read_bytes().strip() if secret_file else deid_key(_settings_for(data_dir))
    pseudonyms = Pseudonyms(key, variant=request.variant)
    output.mkdir(parents=True, exist_ok=True)
    files = sorted(_walk(paths))
    written, excluded = 0, []
    with tqdm(total=len(files), unit="file", disable=quiet, file=sys.stderr) as bar:
        for path in files:
            copy = deidentify_file(path, request, pseudonyms)
            if copy.data is None:
                excluded.append((path, copy.excluded))
            else:
                (output / f"{copy.sop_instance_uid}.dcm").write_bytes(copy.data)
                written += 1
            bar.update(1)
    click.echo(f"{len(files)} files: {written} de-identified, {len(excluded)} left out")
    for path, why in excluded:
        click.echo(f"  left out {path}: {why}", err=True)
    if excluded and not written:
        sys.exit(1)


def _region(text: str) -> tuple[int, int, int, int]:
    try:
        x0, y0, x1, y1 = (int(n) for n in text.split(","))
    except ValueError as exc:
        raise click.BadParameter(
            f"{text!r} is not x0,y0,x1,y1", param_hint="--pixel-region"
        ) from exc
    if not (0 <= x0 < x1 and 0 <= y0 < y1):
        raise click.BadParameter(f"{text!r}: need 0 <= x0 < x1 and 0 <= y0 < y1")
    return x0, y0, x1, y1

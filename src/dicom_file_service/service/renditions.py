"""Renditions for display (WADO-RS rendered and thumbnail, WADO-URI, the built-in page):
an instance's or frame's rendering as PNG or JPEG, with its entity tag.

Every rendition is made from the PNG of the render cache (``rendering.render_blocking``);
JPEG is encoded from it. A thumbnail is the rendering at ``DICOM_FS_THUMBNAIL_SIZE`` on its
longer side, the very options the prerenderer renders ahead, so a prerendered thumbnail is
the one every door serves.
"""

from __future__ import annotations

from dataclasses import dataclass

from dicom_file_service.dicom.encode import png_to_jpeg
from dicom_file_service.dicom.render import RenderOptions
from dicom_file_service.errors import NoPixelData
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.instances import find_instances
from dicom_file_service.service.records import InstanceRecord
from dicom_file_service.service.rendering import render_blocking
from dicom_file_service.settings import Settings

PNG = "image/png"
JPEG = "image/jpeg"


@dataclass(frozen=True)
class Rendition:
    data: bytes
    media_type: str  # PNG or JPEG
    etag: str  # strong: a stored file never changes, nor does its rendering


def thumbnail_options(settings: Settings, frame: int = 1) -> RenderOptions:
    """A thumbnail: the frame fitted in a square of the configured size, aspect kept."""
    size = settings.thumbnail_size
    return RenderOptions(frame=frame, width=size, height=size)


def render_file(
    ctx: ServiceContext, file_id: str, options: RenderOptions, media_type: str, quality: int
) -> Rendition:
    """One file's rendition (blocking: run it in the CPU pool)."""
    png = render_blocking(ctx, file_id, options)
    if media_type == PNG:
        return Rendition(png.data, PNG, png.etag)
    etag = f'{png.etag[:-1]}-q{quality}.jpg"'
    return Rendition(png_to_jpeg(png.data, quality=quality), JPEG, etag)


def render_instance(
    ctx: ServiceContext,
    study: str,
    series: str,
    sop: str,
    options: RenderOptions,
    media_type: str,
    quality: int,
) -> Rendition:
    """The instance (or frame) rendered, found by its UIDs."""
    record = find_instances(ctx, study, series, sop)[0]
    return render_file(ctx, record.file_id, options, media_type, quality)


def _images(ctx: ServiceContext, study: str, series: str | None) -> list[InstanceRecord]:
    """The instances of a study or series that have pixel data to show."""
    images = [r for r in find_instances(ctx, study, series) if r.number_of_frames > 0]
    if not images:
        which = f"series {series}" if series is not None else f"study {study}"
        raise NoPixelData(f"{which} has no image to show")
    return images


def representative(
    ctx: ServiceContext,
    study: str,
    series: str | None,
    options: RenderOptions,
    media_type: str,
    quality: int,
) -> Rendition:
    """A study's or series' thumbnail: its middle image instance's (PS3.18 10.4.1.1.4)."""
    images = _images(ctx, study, series)
    return render_file(ctx, images[len(images) // 2].file_id, options, media_type, quality)


def render_all(
    ctx: ServiceContext,
    study: str,
    series: str | None,
    options: RenderOptions,
    media_type: str,
    quality: int,
) -> list[Rendition]:
    """Every image instance of a study or series rendered (PS3.18 10.4.1.1.3)."""
    return [
        render_file(ctx, r.file_id, options, media_type, quality)
        for r in _images(ctx, study, series)
    ]

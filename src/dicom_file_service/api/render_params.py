"""The rendering parameters of the two doors that render: WADO-RS (PS3.18 8.3.5.1) and
WADO-URI (PS3.18 9.1.2), read from a query into ``RenderOptions`` and a JPEG quality.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from dicom_file_service.dicom.render import RenderOptions
from dicom_file_service.errors import InvalidParameter

DEFAULT_QUALITY = 90


def wado_rs_options(query: Mapping[str, str], base: RenderOptions) -> tuple[RenderOptions, int]:
    """``window=center,width[,linear]``, ``viewport=w,h``, ``quality`` over ``base`` (the
    frame's rendering, or its thumbnail)."""
    options = base
    if "window" in query:
        parts = query["window"].split(",")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2].lower() != "linear"):
            raise InvalidParameter(
                "window is center,width[,linear] (only the LINEAR function is supported)"
            )
        try:
            center, width = float(parts[0]), float(parts[1])
        except ValueError as exc:
            raise InvalidParameter("window's center and width must be numbers") from exc
        options = replace(options, window_center=center, window_width=width)
    if "viewport" in query:
        try:
            vw, vh = (int(v) for v in query["viewport"].split(","))
        except ValueError as exc:
            raise InvalidParameter("viewport is width,height in pixels") from exc
        options = replace(options, width=vw, height=vh)
    try:
        quality = int(query.get("quality", str(DEFAULT_QUALITY)))
    except ValueError as exc:
        raise InvalidParameter("quality is a number from 1 to 100") from exc
    if not 1 <= quality <= 100:
        raise InvalidParameter("quality is a number from 1 to 100")
    return options, quality


def wado_uri_options(query: Mapping[str, str]) -> tuple[RenderOptions, int]:
    """frameNumber, windowCenter + windowWidth, rows, columns, imageQuality."""

    def number(name: str, kind: type[float] | type[int]) -> Any:
        if name not in query:
            return None
        try:
            return kind(query[name])
        except ValueError as exc:
            raise InvalidParameter(f"{name} must be a number") from exc

    center, width = number("windowCenter", float), number("windowWidth", float)
    if (center is None) != (width is None):
        raise InvalidParameter("give both windowCenter and windowWidth, or neither")
    quality = number("imageQuality", int) or DEFAULT_QUALITY
    if not 1 <= quality <= 100:
        raise InvalidParameter("imageQuality is a number from 1 to 100")
    options = RenderOptions(
        frame=number("frameNumber", int) or 1,
        window_center=center,
        window_width=width,
        width=number("columns", int),
        height=number("rows", int),
    )
    return options, quality

"""QIDO-RS (PS3.18 10.6): search studies, series and instances.

Matching is the index's (indexed columns of study, series and instance rows, the extra keys'
index, and for any other key the stored headers, bounded by ``qido_max_scanned``); the attributes
an answer returns are sliced from the stored header of each match's first instance (one row
read per match, never a blob) and completed with what PS3.18 says to compute: the related
counts, the modalities in a study, availability and the RetrieveURL.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydicom.datadict import dictionary_VR

from dicom_file_service.dicom import header_index
from dicom_file_service.dicom.qido import Level, Query, parse_query
from dicom_file_service.dicom.qido_returns import (
    ALL_SERIES,
    ALL_STUDY,
    COMPUTED,
    COUNTS,
    RETURN,
)
from dicom_file_service.errors import InvalidParameter
from dicom_file_service.index import extra_keys as index_extra
from dicom_file_service.index import qido as index_qido
from dicom_file_service.index import qido_search
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.extra_keys import configured_tags
from dicom_file_service.service.locations import ResourceUrls


@dataclass
class SearchResult:
    matches: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)

    def body(self) -> bytes:
        return orjson.dumps(self.matches)


def search(
    ctx: ServiceContext,
    params: Iterable[tuple[str, str]],
    level: Level,
    scope: dict[Level, str],
    urls: ResourceUrls,
    returned: Collection[str] | None = None,
) -> SearchResult:
    """What a QIDO-RS request finds at ``level`` within ``scope`` (the UIDs of its path).

    ``returned``: the attributes (hex tags) a door answers with instead of QIDO-RS's, only
    those the data has (a C-FIND fills the rest itself, and reads no others)."""
    query = parse_query(params, level)
    _refuse_computed(query)
    cap = ctx.settings.qido_max_results
    result = SearchResult([])
    if query.limit is not None and query.limit > cap:
        result.warnings.append(f"The limit was lowered to {cap}")
    limit = min(query.limit if query.limit is not None else cap, cap)
    scan_limit = ctx.settings.qido_max_scanned
    # Its statements need no one snapshot: a match deleted between them is left out below.
    with ctx.index.read(transaction=False) as conn:
        indexed = (
            index_extra.complete_tags(conn, configured_tags(ctx))
            if query.header_conditions and ctx.settings.extra_query_keys
            else frozenset()
        )
        page = qido_search.search(
            conn, query, scope, limit, scan_limit=scan_limit, indexed_extra=indexed
        )
        found, more = page.matches, page.more
        counted = returned is None or not COUNTS.isdisjoint(returned)
        summaries = _summaries(conn, level, found, counted)
        firsts = {m: _first_seq(m, level, summaries) for m in found}
        headers = index_qido.headers_by_seq(conn, [s for s in firsts.values() if s is not None])
    if page.cut:
        names = ", ".join(
            dict.fromkeys(c.key.name for c in query.header_conditions if c.key.tag not in indexed)
        )
        result.warnings.append(
            f"Only the first {scan_limit} instances the indexed keys allow were examined for "
            f"{names} (not indexed; DICOM_FS_QIDO_MAX_SCANNED): later ones may match too. "
            "Narrow the search with indexed keys"
        )
    if more:
        result.warnings.append(
            f"There are more matches than the {limit} returned; ask again with "
            f"offset={query.offset + limit}"
        )
    wanted = _returned(query, scope) if returned is None else list(returned)
    for match in found:
        summary = summaries.get(_uid(match, level))
        seq = firsts[match]
        if seq is None or seq not in headers:
            continue  # deleted between the two reads
        header, index = headers[seq]
        if query.include_all and level == "instance":
            uids = (match.series_instance_uid, match.sop_instance_uid)
            base = urls.bulk_data_base(match.study_instance_uid, *map(str, uids))
            attributes = orjson.loads(header_index.with_bulk_data_base(header, base))
        else:
            attributes = header_index.select_elements(header, index, wanted)
        attributes.update(_computed(match, level, summary, urls, counted))
        if returned is None:
            for tag in wanted:
                attributes.setdefault(tag, _empty(tag))
            attributes = dict(sorted(attributes.items()))
        result.matches.append(attributes)
    return result


def search_all(
    ctx: ServiceContext,
    params: Iterable[tuple[str, str]],
    level: Level,
    urls: ResourceUrls,
    returned: Collection[str] | None = None,
    first_page: int | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Every match of a search, a page at a time: for a door that answers each match as it
    goes (a C-FIND) and may be told to stop between pages. Pages are ``qido_max_results``
    long; with ``first_page``, the first is that long and each next one twice the last (up
    to ``qido_max_results``): the first answers leave while the rest are still searched."""
    pairs = [(k, v) for k, v in params if k not in ("limit", "offset")]
    largest = ctx.settings.qido_max_results
    page = min(first_page or largest, largest)
    offset = 0
    while True:
        found = search(
            ctx,
            [*pairs, ("limit", str(page)), ("offset", str(offset))],
            level,
            {},
            urls,
            returned,
        ).matches
        if found:
            yield found
        if len(found) < page:
            return
        offset += page
        page = min(2 * page, largest)


def _refuse_computed(query: Query) -> None:
    """Attributes the service computes are in no header: a condition on one could only
    match nothing, so it is refused rather than answered empty."""
    for condition in query.header_conditions:
        if condition.key.path[0] in COMPUTED:
            raise InvalidParameter(f"{condition.key.name}: computed, not a matching key")


def _uid(match: index_qido.Match, level: Level) -> str:
    if level == "series":
        return match.series_instance_uid or ""
    return match.study_instance_uid


def _first_seq(
    match: index_qido.Match, level: Level, summaries: dict[str, index_qido.Summary]
) -> int | None:
    """The instance whose header answers for the match (None: it went meanwhile)."""
    if match.seq is not None:
        return match.seq
    summary = summaries.get(_uid(match, level))
    return summary.first_seq if summary else None


def _summaries(
    conn: Any, level: Level, found: list[index_qido.Match], counted: bool
) -> dict[str, index_qido.Summary]:
    if level == "study":
        uids = [m.study_instance_uid for m in found]
        return index_qido.study_summaries(conn, uids, counted=counted)
    if level == "series":
        return index_qido.series_summaries(conn, [m.series_instance_uid or "" for m in found])
    return {}


def _returned(query: Query, scope: dict[Level, str]) -> list[str]:
    """The tags an answer holds: the level's own, the levels' above it unless the path named
    them, what ``includefield`` and the query keys asked for."""
    tags = list(RETURN[query.level])
    if query.level == "instance" and "series" not in scope:
        tags += RETURN["series"]
    if query.level != "study" and "study" not in scope:
        tags += RETURN["study"]
    if query.include_all:
        tags += ALL_STUDY + (ALL_SERIES if query.level != "study" else [])
    tags += query.include
    own = set(RETURN[query.level])
    return [t for t in dict.fromkeys(tags) if t in own or t not in COMPUTED]


def _computed(
    match: index_qido.Match,
    level: Level,
    summary: index_qido.Summary | None,
    urls: ResourceUrls,
    counted: bool = True,
) -> dict[str, Any]:
    series = match.series_instance_uid if level in ("series", "instance") else None
    sop = match.sop_instance_uid if level == "instance" else None
    url = urls.retrieve_url(match.study_instance_uid, series, sop)
    out: dict[str, Any] = {
        "00080056": {"vr": "CS", "Value": ["ONLINE"]},
        "00081190": {"vr": "UR", "Value": [url]},
    }
    if summary is not None and level == "study" and counted:
        out["00201206"] = {"vr": "IS", "Value": [summary.series]}
        out["00201208"] = {"vr": "IS", "Value": [summary.instances]}
        out["00080061"] = (
            {"vr": "CS", "Value": list(summary.modalities)}
            if summary.modalities
            else _empty("00080061")
        )
    elif summary is not None and level == "series":
        out["00201209"] = {"vr": "IS", "Value": [summary.instances]}
    return out


def _empty(tag: str) -> dict[str, Any]:
    """A returned attribute the data has no value for: present, zero length (PS3.18 F.2.5)."""
    return {"vr": _dictionary_vr(tag)}


@functools.lru_cache(maxsize=4096)
def _dictionary_vr(tag: str) -> str:
    try:
        vr = dictionary_VR(int(tag, 16))
    except KeyError:
        return "UN"
    return vr if len(vr) == 2 else "UN"

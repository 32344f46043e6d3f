"""The registry of remote AEs over real HTTP, on both backends: create, replace, read, list,
delete; every bad body a problem document naming what is wrong; entries configured by
DICOM_FS_MODALITIES listed, and entries put over REST kept across a restart."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_upload import assert_problem
from tests.conftest import start_server, stop_server

BODY = {"ae_title": "CT_SCANNER", "host": "10.0.0.12", "port": 104, "allow": ["echo", "find"]}


def _name() -> str:
    """A name of this test's own (the server is shared by the session)."""
    return f"m-{uuid.uuid4().hex[:12]}"


def test_create_replace_read_list_delete(client: httpx.Client) -> None:
    name = _name()
    r = client.put(f"/modalities/{name}", json=BODY)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/modalities/{name}"
    assert r.json() == {"name": name, **BODY}

    replaced = {**BODY, "ae_title": " MR ", "port": 11112}
    del replaced["allow"]  # absent: every operation
    r = client.put(f"/modalities/{name}", json=replaced)
    assert r.status_code == 200, r.text
    assert "location" not in r.headers
    expected = {
        "name": name,
        "ae_title": "MR",
        "host": "10.0.0.12",
        "port": 11112,
        "allow": ["echo", "store", "find", "move", "get"],
    }
    assert r.json() == expected
    assert client.get(f"/modalities/{name}").json() == expected

    other = _name()
    assert client.put(f"/modalities/{other}", json=BODY).status_code == 201
    listed = client.get("/modalities")
    assert listed.status_code == 200 and listed.headers["content-type"] == "application/json"
    names = [m["name"] for m in listed.json()]
    assert names == sorted(names) and {name, other} <= set(names)
    assert next(m for m in listed.json() if m["name"] == name) == expected

    r = client.delete(f"/modalities/{name}")
    assert r.status_code == 204 and r.content == b""
    assert_problem(client.get(f"/modalities/{name}"), 404, "modality_not_found")
    assert_problem(client.delete(f"/modalities/{name}"), 404, "modality_not_found")
    assert name not in [m["name"] for m in client.get("/modalities").json()]
    client.delete(f"/modalities/{other}")


def test_unknown_names_are_404_problems(client: httpx.Client) -> None:
    body = assert_problem(client.get("/modalities/never-registered"), 404, "modality_not_found")
    assert "never-registered" in str(body["detail"])
    assert_problem(client.delete("/modalities/never-registered"), 404, "modality_not_found")


@pytest.mark.parametrize(
    ("content", "code", "named"),
    [
        (b"{not json", "malformed_body", "JSON"),
        (b"", "malformed_body", "JSON"),
        (b'["ae_title", "host"]', "malformed_body", "object"),
        (b'"CT@10.0.0.1:104"', "malformed_body", "object"),
        (json.dumps({**BODY, "port": 70000}).encode(), "invalid_modality", "port"),
        (json.dumps({**BODY, "port": "104"}).encode(), "invalid_modality", "port"),
        (json.dumps({**BODY, "allow": ["find", "print"]}).encode(), "invalid_modality", "print"),
        (json.dumps({**BODY, "ae_title": "A" * 17}).encode(), "invalid_modality", "ae_title"),
        (json.dumps({**BODY, "host": "two words"}).encode(), "invalid_modality", "host"),
        (json.dumps({"host": "h", "port": 104}).encode(), "invalid_modality", "ae_title"),
    ],
)
def test_a_bad_body_is_a_problem_naming_it(
    client: httpx.Client, content: bytes, code: str, named: str
) -> None:
    name = _name()
    r = client.put(
        f"/modalities/{name}", content=content, headers={"content-type": "application/json"}
    )
    body = assert_problem(r, 400, code)
    assert named in str(body["detail"])
    assert_problem(client.get(f"/modalities/{name}"), 404, "modality_not_found")


def test_a_bad_name_or_a_huge_body_is_refused(client: httpx.Client) -> None:
    body = assert_problem(client.put("/modalities/has%20space", json=BODY), 400, "invalid_modality")
    assert "name" in str(body["detail"])
    huge = b'{"ae_title": "' + b"x" * 100_000 + b'"}'
    r = client.put(f"/modalities/{_name()}", content=huge)
    assert_problem(r, 413, "payload_too_large")


def test_the_routes_are_documented(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]["/modalities/{name}"]) == {"get", "put", "delete"}
    assert spec["paths"]["/modalities"]["get"]["tags"] == ["modalities"]


def _listed(base_url: str) -> dict[str, Any]:
    with httpx.Client(base_url=base_url, timeout=30) as c:
        return {m["name"]: m for m in c.get("/modalities").json()}


def test_configured_entries_are_listed_and_put_ones_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    configured = {"pacs": {"ae_title": "PACS", "host": "localhost", "port": 4242}}
    env = {"DICOM_FS_MODALITIES": json.dumps(configured)}
    server = start_server(data, env)
    try:
        assert _listed(server.base_url)["pacs"]["ae_title"] == "PACS"
        with server.client() as c:
            r = c.put("/modalities/pacs", json={**BODY, "ae_title": "EDITED"})
            assert r.status_code == 200, r.text
            assert c.put("/modalities/viewer", json=BODY).status_code == 201
    finally:
        stop_server(server)

    changed = {"pacs": {**configured["pacs"], "port": 104, "allow": ["find"]}}
    server = start_server(data, {"DICOM_FS_MODALITIES": json.dumps(changed)})
    try:
        listed = _listed(server.base_url)
        assert listed["viewer"] == {"name": "viewer", **BODY}  # kept across the restart
        # The configuration wins over the edit, at each start.
        assert listed["pacs"] == {
            "name": "pacs",
            "ae_title": "PACS",
            "host": "localhost",
            "port": 104,
            "allow": ["find"],
        }
    finally:
        stop_server(server)


def test_a_bad_configuration_stops_the_start_naming_it(tmp_path: Path) -> None:
    bad = {"pacs": {"ae_title": "PACS", "host": "localhost", "port": 0}}
    with pytest.raises(RuntimeError) as raised:
        start_server(tmp_path / "data", {"DICOM_FS_MODALITIES": json.dumps(bad)})
    assert "DICOM_FS_MODALITIES, entry 'pacs': port" in str(raised.value)

"""Health, readiness, OpenAPI docs, and problem documents for unknown routes."""

from __future__ import annotations

import httpx


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_openapi_documents_the_file_api(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    for path in (
        "/dicom-image",
        "/dicom-image/{file_id}",
        "/dicom-image/{file_id}/png",
        "/dicom-image/{file_id}/metadata",
    ):
        assert path in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_unknown_routes_and_methods_are_problem_documents(client: httpx.Client) -> None:
    r = client.get("/no-such-route")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = client.put("/dicom-image")
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"

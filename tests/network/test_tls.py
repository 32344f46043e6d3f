"""The DICOM listener over TLS (PS3.15 Annex B) on a port of its own, with DCMTK's echoscu and
storescu as clients: server authentication, and client certificates required when a CA is
configured. The plain port keeps working beside it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Server, free_port, start_server, stop_server
from tests.datafiles import data_file
from tests.network.dimse_helpers import need_dcmtk, run


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    d = tmp_path_factory.mktemp("pki")
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"), "-subj", "/CN=test CA",
    )  # fmt: skip
    for name in ("server", "client"):
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / f"{name}.key"),
            "-out", str(d / f"{name}.csr"), "-subj", f"/CN={name}",
        )  # fmt: skip
        ext = d / f"{name}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1\n")
        _openssl(
            "x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"),
            "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "2",
            "-out", str(d / f"{name}.crt"), "-extfile", str(ext),
        )  # fmt: skip
    return d


def _tls_server(root: Path, pki: Path, *, client_ca: bool) -> tuple[Server, int]:
    port = free_port()
    env = {
        "DICOM_FS_DICOM_TLS_PORT": str(port),
        "DICOM_FS_DICOM_TLS_CERT": str(pki / "server.crt"),
        "DICOM_FS_DICOM_TLS_KEY": str(pki / "server.key"),
    }
    if client_ca:
        env["DICOM_FS_DICOM_TLS_CLIENT_CA"] = str(pki / "ca.crt")
    return start_server(root / "data", env), port


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[tuple[Server, int]]:
    need_dcmtk()
    server, port = _tls_server(tmp_path_factory.mktemp("tls"), pki, client_ca=False)
    yield server, port
    stop_server(server)
    assert "Traceback" not in server.log(), server.log()


def test_echo_and_store_over_tls(tls: tuple[Server, int], pki: Path) -> None:
    server, port = tls
    secure = ["+tla", "+cf", str(pki / "ca.crt"), "-aec", "DICOMFS", "127.0.0.1", str(port)]
    echo = run(["echoscu", "-v", *secure])
    assert echo.returncode == 0 and "Success" in echo.stderr, echo.stderr
    store = run(["storescu", *secure, str(data_file("CT_small.dcm"))])
    assert store.returncode == 0 and "Failed" not in store.stderr, store.stderr
    with server.client() as client:
        found = client.get("/dicomweb/studies", params={"PatientID": "1CT1"})
        assert found.status_code == 200 and found.json()
    plain = run(["echoscu", "-aec", "DICOMFS", "127.0.0.1", str(server.dicom_port)])
    assert plain.returncode == 0, plain.stderr
    wrong_ca = run(["echoscu", "+tla", "-aec", "DICOMFS", "127.0.0.1", str(port)])
    assert wrong_ca.returncode != 0  # the server's certificate is not trusted without its CA


def test_a_client_certificate_is_required_when_a_ca_is_configured(
    tmp_path: Path, pki: Path
) -> None:
    need_dcmtk()
    server, port = _tls_server(tmp_path, pki, client_ca=True)
    try:
        peer = ["+cf", str(pki / "ca.crt"), "-aec", "DICOMFS", "127.0.0.1", str(port)]
        anonymous = run(["echoscu", "+tla", *peer])
        assert anonymous.returncode != 0
        key, cert = str(pki / "client.key"), str(pki / "client.crt")
        authenticated = run(["echoscu", "-v", "+tls", key, cert, *peer])
        assert authenticated.returncode == 0 and "Success" in authenticated.stderr, (
            authenticated.stderr
        )
    finally:
        stop_server(server)

"""The deployment files (Dockerfile, deploy/docker-compose.yml, deploy/nginx.conf,
deploy/seaweedfs-s3.json) stay valid and wired to the commands the service really has.

The production topology itself is exercised natively by tests/deployment; this only checks the
container files that describe it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # locked: a dependency of uvicorn[standard]

from dicom_file_service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
APP_SERVICES = ("migrate", "api1", "api2", "worker")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def _service(name: str) -> dict[str, Any]:
    service = _compose()["services"][name]
    assert isinstance(service, dict)
    return service


def _command(name: str) -> list[str]:
    command = _service(name)["command"]
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def _runs(command: list[str], *subcommand: str) -> bool:
    """Whether ``command`` runs ``dicom-file-service <subcommand...>``."""
    if "dicom-file-service" not in command:
        return False
    start = command.index("dicom-file-service") + 1
    return tuple(command[start : start + len(subcommand)]) == subcommand


def test_compose_file_is_valid_for_docker_compose() -> None:
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI") != "true":
            pytest.skip("docker-compose is not installed (scripts/test installs it)")
        pytest.fail("docker-compose is not installed on CI")
    result = subprocess.run(
        [exe, "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_compose_has_no_obsolete_version_key() -> None:
    assert "version" not in _compose()


@pytest.mark.parametrize("name", ["api1", "api2"])
def test_api_services_serve_on_all_interfaces(name: str) -> None:
    command = _command(name)
    assert _runs(command, "serve")
    assert "0.0.0.0" in command
    assert "8000" in command


def test_worker_service_runs_the_worker() -> None:
    assert _runs(_command("worker"), "worker")


def test_migrate_service_upgrades_the_database_before_the_api_starts() -> None:
    assert _runs(_command("migrate"), "db", "upgrade")
    for name in ("api1", "api2"):
        depends_on = _service(name)["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_use_postgresql_and_s3(name: str) -> None:
    env = _service(name)["environment"]
    assert env["DICOM_FS_DATABASE_URL"].startswith("postgresql://")
    assert env["DICOM_FS_STORAGE_URL"].startswith("s3://")
    assert env["AWS_ENDPOINT_URL"] == "http://s3:8333"


def _settings_of(name: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a container of ``name`` starts with: its environment, nothing else."""
    for key in list(os.environ):
        if key.startswith(("DICOM_FS_", "AWS_")):
            monkeypatch.delenv(key)
    for key, value in _service(name)["environment"].items():
        monkeypatch.setenv(key, str(value))
    return Settings()


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_variable_the_compose_file_sets_is_a_setting(name: str) -> None:
    """The service ignores unknown variables: a misspelt one would silently do nothing."""
    known = {f"DICOM_FS_{field.upper()}" for field in Settings.model_fields}
    known |= {
        alias
        for field in Settings.model_fields.values()
        for alias in getattr(field.validation_alias, "choices", [field.validation_alias])
        if isinstance(alias, str)
    }
    assert set(_service(name)["environment"]) - known == set()


def test_app_services_start_with_the_same_index_store_and_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every instance signs and checks the others' URLs, makes the same pseudonyms (whichever
    runs a de-identification job), and sees the same index and bytes."""
    seen = []
    for name in APP_SERVICES:
        settings = _settings_of(name, monkeypatch)
        secret, deid = settings.signing_secret, settings.deid_secret
        assert secret is not None and deid is not None, name
        seen.append(
            (
                settings.resolved_database_url(),
                settings.resolved_storage_url(),
                secret.get_secret_value(),
                settings.prerender,
                deid.get_secret_value(),
            )
        )
    assert seen[0][0].startswith("postgresql") and seen[0][1].startswith("s3://")
    assert seen[0][3] is True  # the worker renders ahead for the API instances
    assert all(s == seen[0] for s in seen), seen


def test_seaweedfs_config_grants_the_app_credentials_admin_rights() -> None:
    env = _service("api1")["environment"]
    config = json.loads((DEPLOY / "seaweedfs-s3.json").read_text())
    identities = {
        (cred["accessKey"], cred["secretKey"]): set(identity["actions"])
        for identity in config["identities"]
        for cred in identity["credentials"]
    }
    actions = identities[(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])]
    assert {"Admin", "Read", "Write", "List", "Tagging"} <= actions
    assert "-s3.config=/etc/seaweedfs/s3.json" in _service("s3")["command"]


def test_load_balancer_streams_to_both_api_instances() -> None:
    lb = _service("lb")
    mounts = [v for v in lb["volumes"] if isinstance(v, str) and "nginx.conf" in v]
    assert mounts
    conf_path = (COMPOSE_FILE.parent / mounts[0].split(":", 1)[0]).resolve()
    conf = conf_path.read_text()
    assert re.search(r"server\s+api1:8000\s*;", conf)
    assert re.search(r"server\s+api2:8000\s*;", conf)
    for directive in (
        "client_max_body_size 0;",
        "proxy_request_buffering off;",
        "proxy_buffering off;",
    ):
        assert directive in conf
    assert any(str(port).startswith("8000:") for port in lb["ports"])


def test_dockerfile_runs_the_service_by_default() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmds = [line for line in dockerfile.splitlines() if line.startswith("CMD ")]
    assert len(cmds) == 1
    cmd = cmds[0].removeprefix("CMD ").strip()
    argv = json.loads(cmd) if cmd.startswith("[") else shlex.split(cmd)
    assert _runs(argv, "serve")
    assert "0.0.0.0" in argv
    assert re.search(r"^USER\s+(?!root\b)\S+", dockerfile, re.MULTILINE)


def test_the_api_instances_trust_the_load_balancer_only_on_private_networks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Behind the compose file's nginx, URLs follow the client's scheme and host: the
    instances publish no port and trust their private network's peers, nothing else."""
    import ipaddress

    for name in ("api1", "api2"):
        assert "ports" not in _service(name)
        trusted = _settings_of(name, monkeypatch).trusted_proxies
        for cidr in trusted.split(","):
            assert ipaddress.ip_network(cidr.strip()).is_private, cidr
    conf = (DEPLOY / "nginx.conf").read_text()
    assert "proxy_set_header X-Forwarded-Host" in conf
    assert 'proxy_set_header Forwarded "";' in conf

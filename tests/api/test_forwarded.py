"""What a reverse proxy says of the client's request, and who may say it.

The parsing (``api.forwarded``) as pure functions: RFC 7239's quoting and lists, IPv6 nodes and
hosts, chains of proxies, and bad values ignored, never an error. Then a served instance: a
trusted peer's headers move every URL it hands out; an untrusted peer's change nothing.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient

from dicom_file_service.api.forwarded import (
    Seen,
    parse_forwarded,
    parse_node,
    seen_by_proxies,
    trusted_networks,
    valid_host,
    valid_prefix,
)
from tests.api.dicom_factory import copy_with_new_uid
from tests.conftest import Server, start_server, stop_server
from tests.datafiles import data_file

LOOPBACK = trusted_networks("127.0.0.0/8,::1/128")


def seen(peer: str, trusted: str = "127.0.0.0/8,::1/128", **headers: str) -> Seen | None:
    raw = [(k.replace("_", "-").lower().encode(), v.encode("latin-1")) for k, v in headers.items()]
    return seen_by_proxies(raw, peer, trusted_networks(trusted))


def test_forwarded_elements_pairs_and_quoting() -> None:
    assert parse_forwarded("for=192.0.2.60;proto=http;by=203.0.113.43") == [
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}
    ]
    assert parse_forwarded('For="[2001:db8:cafe::17]:4711", for=192.0.2.43;Host=a.example') == [
        {"for": "[2001:db8:cafe::17]:4711"},
        {"for": "192.0.2.43", "host": "a.example"},
    ]
    assert parse_forwarded(r'host="a\"b";proto=https') == [{"host": 'a"b', "proto": "https"}]
    assert parse_forwarded(" for=unknown ;  proto = https") is None  # spaces around '='
    assert parse_forwarded("for=a;for=b") is None  # a parameter twice in one element
    assert parse_forwarded('for="unterminated') is None
    assert parse_forwarded("garbage") is None
    assert parse_forwarded(", ;,for=_hidden") == [{"for": "_hidden"}]


def test_nodes_hosts_and_prefixes() -> None:
    assert str(parse_node("192.0.2.1:4711")) == "192.0.2.1"
    assert str(parse_node("[2001:db8::1]:4711")) == "2001:db8::1"
    assert str(parse_node("2001:db8::1")) == "2001:db8::1"
    for bad in ("unknown", "_hidden", "[192.0.2.1]", "[::1", "1.2.3.4:x", "[::1]x", ""):
        assert parse_node(bad) is None, bad
    assert valid_host("pacs.example.org:8443") == "pacs.example.org:8443"
    assert valid_host("[2001:db8::1]:443") == "[2001:db8::1]:443"
    assert valid_host("[2001:db8::1]") == "[2001:db8::1]"
    for bad in ("a/b", "user@a", "a:0", "a:99999", "[nope]", "[::1]:", "a b", "", "é.example"):
        assert valid_host(bad) is None, bad
    assert valid_prefix("/pacs/") == "/pacs"
    assert valid_prefix("/a/b%20c") == "/a/b%20c"
    assert valid_prefix("/") == ""
    for bad in ("pacs", "/a/../b", "/a?b", '/a"b', "/a<b", "/%zz", "/a#b"):
        assert valid_prefix(bad) is None, bad


def test_only_a_trusted_peer_is_heard() -> None:
    headers = {"x_forwarded_host": "public.example", "forwarded": "proto=https"}
    assert seen("203.0.113.9", **headers) is None
    assert seen("127.0.0.1", "10.0.0.0/8", **headers) is None
    assert seen("::1", **headers) == Seen(scheme="https", host="public.example")
    assert seen("::ffff:127.0.0.1", **headers) == Seen(scheme="https", host="public.example")
    assert seen("10.1.2.3", "10.0.0.0/8", **headers) == Seen(scheme="https", host="public.example")
    assert seen("127.0.0.1", "", **headers) is None  # empty: trusts nobody


def test_the_outermost_trusted_hop_of_a_chain_counts() -> None:
    # The client reached 10.0.0.1, which forwarded to the peer 127.0.0.1.
    chain = "for=198.51.100.7;host=evil.example, for=203.0.113.5;host=public.example;proto=https"
    inner = chain + ", for=10.0.0.1;host=inner.internal;proto=http"
    assert seen("127.0.0.1", "127.0.0.0/8,10.0.0.0/8", forwarded=inner) == Seen(
        scheme="https", host="public.example", client="203.0.113.5"
    )
    # Trusting only the peer: its own element counts, the client being 10.0.0.1.
    assert seen("127.0.0.1", forwarded=inner) == Seen(
        scheme="http", host="inner.internal", client="10.0.0.1"
    )
    # X-Forwarded-For counts the hops for the X-Forwarded-* lists the same way.
    assert seen(
        "127.0.0.1",
        "127.0.0.0/8,10.0.0.0/8",
        x_forwarded_for="198.51.100.7, 203.0.113.5, 10.0.0.1",
        x_forwarded_host="evil.example, public.example, inner.internal",
        x_forwarded_proto="https, http",
    ) == Seen(scheme="https", host="public.example", client="203.0.113.5")
    # Without X-Forwarded-For, the nearest proxy's (rightmost) value.
    assert seen("127.0.0.1", x_forwarded_host="a.example, b.example") == Seen(host="b.example")


def test_x_forwarded_wins_field_by_field_and_bad_values_are_ignored() -> None:
    both = seen(
        "127.0.0.1",
        forwarded='host="forwarded.example";proto=https',
        x_forwarded_host="x.example",
        x_forwarded_prefix="/pacs/",
    )
    assert both == Seen(scheme="https", host="x.example", prefix="/pacs")
    bad = seen(
        "127.0.0.1",
        forwarded="host=a.example;proto=gopher",
        x_forwarded_host="x.example/evil",
        x_forwarded_proto="javascript",
        x_forwarded_prefix="/../etc",
        x_forwarded_for="not-an-address",
    )
    assert bad == Seen(host="a.example")
    assert seen("127.0.0.1", forwarded="for=1.2.3.4;;;=;") == Seen()  # malformed: all ignored


def test_random_headers_never_raise() -> None:
    rng = random.Random(7239)
    alphabet = 'ab:;,="\\[]/ 1.9_-%\t\x80\xff'
    for _ in range(3000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        for name in ("forwarded", "x_forwarded_for", "x_forwarded_host", "x_forwarded_prefix"):
            result = seen("127.0.0.1", **{name: value})
            assert result is not None
            assert result.host is None or valid_host(result.host) == result.host
            assert result.prefix in (None, "") or valid_prefix(result.prefix) == result.prefix


def test_bad_trusted_proxies_stop_the_start() -> None:
    with pytest.raises(ValueError, match="DICOM_FS_TRUSTED_PROXIES"):
        trusted_networks("127.0.0.1/8,nonsense")
    assert trusted_networks(" 10.0.0.1 , ::1/128,") == trusted_networks("10.0.0.1/32,::1")


@pytest.fixture(scope="module", params=["trusted", "untrusted"])
def proxied(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    """A server reached from 127.0.0.1 that trusts loopback, or only 10.0.0.0/8."""
    env = {"DICOM_FS_PUBLIC_BASE_URL": ""}
    if request.param == "untrusted":
        env["DICOM_FS_TRUSTED_PROXIES"] = "10.0.0.0/8"
    server = start_server(tmp_path_factory.mktemp("fwd") / "data", env)
    with server.client() as client:
        ct = copy_with_new_uid(data_file("CT_small.dcm"))
        assert client.post("/dicom-image", files={"file": ("ct.dcm", ct)}).status_code == 201
    yield server, request.param
    stop_server(server)
    assert "Traceback" not in server.log()


FORGED = {
    "x-forwarded-host": "evil.example",
    "x-forwarded-proto": "https",
    "x-forwarded-prefix": "/pacs",
    "forwarded": 'for=203.0.113.5;host="forwarded.example";proto=https',
}


def test_urls_follow_a_trusted_proxy_and_ignore_anyone_else(proxied: tuple[Server, str]) -> None:
    server, trust = proxied
    real = server.base_url
    public = "https://evil.example/pacs" if trust == "trusted" else real
    with server.client(headers=FORGED) as client:
        studies = client.get("/dicomweb/studies", headers={"accept": "application/dicom+json"})
        assert studies.status_code == 200
        retrieve = studies.json()[0]["00081190"]["Value"][0]
        assert retrieve.startswith(public + "/dicomweb/studies/")
        assert studies.headers["content-location"] == public + "/dicomweb/studies"
        upload = client.post(
            "/dicom-image", files={"file": ("ct.dcm", copy_with_new_uid(data_file("CT_small.dcm")))}
        )
        prefix = "/pacs" if trust == "trusted" else ""
        assert upload.headers["location"].startswith(prefix + "/dicom-image/")
        signed = client.post("/dicom-image/upload-url").json()
        assert signed["upload_url"].startswith(public + "/signed/uploads/")
        assert signed["complete_url"].startswith(prefix + "/dicom-image/uploads/")
        config = client.get("/ohif/app-config.js").text
        assert f'"{prefix}/dicomweb"' in config
        redirect = client.get("/ohif", follow_redirects=False)
        assert redirect.headers["location"] == prefix + "/ohif/"
    # The signed URL works where it points (here, straight: the prefix is the proxy's).
    put = httpx.put(
        real + signed["upload_url"].removeprefix(public),
        content=copy_with_new_uid(data_file("CT_small.dcm")),
        headers={"content-type": "application/dicom"},
    )
    assert put.status_code in (200, 201, 204), put.text


def test_forwarded_alone_is_followed_from_a_trusted_peer(proxied: tuple[Server, str]) -> None:
    server, trust = proxied
    forwarded = {"forwarded": 'for="[2001:db8::7]";host="[2001:db8::1]:8443";proto=https'}
    client = DICOMwebClient(f"{server.base_url}/dicomweb", headers=forwarded)
    url = client.search_for_studies()[0]["00081190"]["Value"][0]
    if trust == "trusted":
        assert url.startswith("https://[2001:db8::1]:8443/dicomweb/studies/")
    else:  # dicomweb-client's own Host header, which leaves the port out
        assert url.startswith("http://127.0.0.1/dicomweb/studies/")

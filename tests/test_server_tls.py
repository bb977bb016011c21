"""HTTPS and mutual TLS, with a CA and certificates made in the test (trustme), against a
real server on 127.0.0.1; and the FleetLock client backend over fleetlock+https."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme

from server_support import PROTO, RunningServer, body, running
from stagger.backends.factory import open_backend
from stagger.core.errors import BackendUnavailable
from stagger.core.semaphore import Granted
from stagger.server.settings import ServerSettings, node_tokens_from_file

CLIENT = "web-07.nodes.example"  # the node the client certificate names (a DNS SAN)


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path
    other_client_cert: Path
    other_client_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca, other_ca = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert(CLIENT)
    stranger = other_ca.issue_cert("intruder.example")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(d / "server.pem"))
    server.private_key_pem.write_to_path(str(d / "server.key"))
    client.cert_chain_pems[0].write_to_path(str(d / "client.pem"))
    client.private_key_pem.write_to_path(str(d / "client.key"))
    stranger.cert_chain_pems[0].write_to_path(str(d / "stranger.pem"))
    stranger.private_key_pem.write_to_path(str(d / "stranger.key"))
    return Pki(
        d / "ca.pem",
        d / "server.pem",
        d / "server.key",
        d / "client.pem",
        d / "client.key",
        d / "stranger.pem",
        d / "stranger.key",
    )


def context(pki: Pki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


@pytest.fixture
def https(pki: Pki, tmp_path: Path) -> Iterator[RunningServer]:
    settings = ServerSettings(
        backend_url=f"sqlite:///{tmp_path}/s.db", tls_cert=pki.cert, tls_key=pki.key
    )
    with running(settings) as srv:
        yield srv


@pytest.fixture
def mtls(pki: Pki, tmp_path: Path) -> Iterator[RunningServer]:
    settings = ServerSettings(
        backend_url=f"sqlite:///{tmp_path}/s.db",
        tls_cert=pki.cert,
        tls_key=pki.key,
        tls_client_ca=pki.ca,
    )
    with running(settings) as srv:
        yield srv


def post(url: str, verify: ssl.SSLContext | bool, node: str = CLIENT) -> httpx.Response:
    return httpx.post(url + "/v1/pre-reboot", json=body(node), headers=PROTO, verify=verify)


def test_https_serves_fleetlock_to_a_client_that_trusts_the_ca(
    https: RunningServer, pki: Pki
) -> None:
    assert https.url.startswith("https://")
    assert post(https.url, context(pki)).status_code == 200


def test_https_is_refused_by_a_client_that_does_not_trust_the_ca(https: RunningServer) -> None:
    with pytest.raises(httpx.ConnectError):
        post(https.url, ssl.create_default_context())


def test_plain_http_to_the_tls_port_gets_no_fleetlock_answer(https: RunningServer) -> None:
    url = https.url.replace("https://", "http://")
    try:
        r = post(url, False)
    except httpx.TransportError:
        return
    assert r.status_code != 200


def test_mutual_tls_accepts_a_client_certificate_from_the_ca(mtls: RunningServer, pki: Pki) -> None:
    assert post(mtls.url, context(pki, pki.client_cert, pki.client_key)).status_code == 200


def test_mutual_tls_refuses_a_client_without_a_certificate(mtls: RunningServer, pki: Pki) -> None:
    with pytest.raises(httpx.TransportError):
        post(mtls.url, context(pki))


def test_mutual_tls_refuses_a_certificate_from_another_ca(mtls: RunningServer, pki: Pki) -> None:
    with pytest.raises(httpx.TransportError):
        post(mtls.url, context(pki, pki.other_client_cert, pki.other_client_key))


async def test_the_fleetlock_backend_speaks_mutual_tls(mtls: RunningServer, pki: Pki) -> None:
    b = open_backend(
        f"fleetlock+{mtls.url}/",
        ca_cert=str(pki.ca),
        cert=str(pki.client_cert),
        key=str(pki.client_key),
    )
    try:
        assert isinstance(await b.acquire("web", CLIENT), Granted)
    finally:
        await b.close()


async def test_the_fleetlock_backend_without_a_client_cert_is_unavailable(
    mtls: RunningServer, pki: Pki
) -> None:
    b = open_backend(f"fleetlock+{mtls.url}/?ca={pki.ca}", retries=0)
    try:
        with pytest.raises(BackendUnavailable):
            await b.acquire("web", "a")
    finally:
        await b.close()


def test_a_client_certificate_acts_only_for_the_node_it_names(
    mtls: RunningServer, pki: Pki
) -> None:
    ctx = context(pki, pki.client_cert, pki.client_key)
    assert post(mtls.url, ctx).status_code == 200
    r = post(mtls.url, ctx, node="web-08")
    assert (r.status_code, r.json()["kind"]) == (403, "forbidden")
    assert CLIENT in r.json()["value"]
    assert "web-08" in r.json()["value"]
    steady = httpx.post(
        mtls.url + "/v1/steady-state", json=body("web-08"), headers=PROTO, verify=ctx
    )
    assert steady.status_code == 403


@pytest.mark.parametrize(("token_node", "status"), [(CLIENT, 200), ("web-08", 403)])
def test_a_certificate_and_a_node_token_must_name_the_same_node(
    pki: Pki, tmp_path: Path, token_node: str, status: int
) -> None:
    (tmp_path / "nodes").write_text(f"{token_node}:node-secret:*\n")
    settings = ServerSettings(
        backend_url=f"sqlite:///{tmp_path}/s.db",
        tls_cert=pki.cert,
        tls_key=pki.key,
        tls_client_ca=pki.ca,
        tokens=tuple(node_tokens_from_file(tmp_path / "nodes")),
    )
    ctx = context(pki, pki.client_cert, pki.client_key)
    with running(settings) as srv:
        for node in (CLIENT, "web-08"):
            r = httpx.post(
                srv.url + "/v1/pre-reboot",
                json=body(node),
                headers={**PROTO, "authorization": "Bearer node-secret"},
                verify=ctx,
            )
            assert r.status_code == (status if node == CLIENT else 403), r.text

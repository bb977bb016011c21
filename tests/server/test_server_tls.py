"""HTTPS and mutual TLS, with a CA and certificates made in the test (trustme), against a
real server on 127.0.0.1; and the FleetLock client backend over fleetlock+https."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme

from server_support import PROTO, RunningServer, body, running
from stagger.backends.factory import open_backend
from stagger.core.errors import ConfigError
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


def untrusting_backend_error(url: str, retries: int) -> str:
    async def go() -> str:
        b = open_backend(url, retries=retries)
        try:
            with pytest.raises(ConfigError) as err:
                await b.acquire("web", "a")
        finally:
            await b.close()
        return str(err.value)

    return asyncio.run(go())


def test_a_server_certificate_from_an_unknown_ca_is_named_at_once_with_the_fix(
    https: RunningServer,
) -> None:
    # retries=5: a certificate problem is not transient, so it is said after the first try
    message = untrusting_backend_error(f"fleetlock+{https.url}/", retries=5)
    assert "certificate signed by a CA this host does not trust" in message
    assert "?ca=/path/ca.pem" in message
    assert "tries" not in message


def test_a_server_certificate_for_another_name_says_so(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("stagger.example")  # not 127.0.0.1, where the client connects
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    settings = ServerSettings(
        backend_url=f"sqlite:///{tmp_path}/s.db",
        tls_cert=tmp_path / "server.pem",
        tls_key=tmp_path / "server.key",
    )
    with running(settings) as srv:
        message = untrusting_backend_error(f"fleetlock+{srv.url}/?ca={tmp_path}/ca.pem", 5)
    assert "presented a certificate for another name" in message


def test_mutual_tls_without_a_client_certificate_names_the_option_that_fixes_it(
    mtls: RunningServer, pki: Pki
) -> None:
    message = untrusting_backend_error(f"fleetlock+{mtls.url}/?ca={pki.ca}", retries=5)
    assert "requires a client certificate (mutual TLS) and none was given" in message
    assert "?cert=/path/client.pem&key=/path/client.key" in message


@pytest.mark.parametrize(
    ("cause", "closed"),
    [
        (BrokenPipeError(32, "Broken pipe"), True),
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), True),
        # the server's close arrived before the request was sent (timing decides which)
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), True),
        (httpx.RemoteProtocolError("illegal status line: bytearray(b'SSH-2.0')"), False),
        (httpx.ConnectError("All connection attempts failed"), False),
    ],
)
def test_what_counts_as_a_tls_server_closing_without_an_answer(
    cause: BaseException, closed: bool
) -> None:
    from stagger.backends.fleetlock_transport import _closed

    error = httpx.ReadError("")
    error.__cause__ = cause
    assert _closed(error) is closed
    assert _closed(cause) is closed


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


def test_mutual_tls_with_a_client_certificate_from_another_ca_says_it_was_not_accepted(
    mtls: RunningServer, pki: Pki
) -> None:
    cert = f"cert={pki.other_client_cert}&key={pki.other_client_key}"
    url = f"fleetlock+{mtls.url}/?ca={pki.ca}&{cert}"
    message = untrusting_backend_error(url, retries=5)
    assert f"did not accept the client certificate {pki.other_client_cert}" in message

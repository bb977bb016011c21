"""A webhook URL's path is its secret: a real `stagger server` logging at DEBUG sends to a real
receiver on 127.0.0.1 (one refused try, then a success) and its whole log never shows the path
or the query; `--log-secrets` is the one switch that lets libraries show it."""

from __future__ import annotations

from pathlib import Path

import httpx

from server_support import PROTO, body, server_process
from stagger.server.logs import cut_urls
from webhook_support import Receiver

SECRET_PATH = "/services/T0SECRET/B0SECRET/XXXXSECRETXXXX"
SECRET_QUERY = "token=QUERYSECRET"


def run_server_and_notify(tmp_path: Path, receiver: Receiver, *flags: str) -> str:
    """Start `stagger server` at DEBUG with one notify entry, have a node take a slot, wait
    for the notification (its first try refused), stop the server; return its stderr."""
    config = f"""
[[notify]]
name = "ops"
url = "{receiver.url(SECRET_PATH + "?" + SECRET_QUERY)}"
events = ["granted"]
retries = 2
backoff = "50ms"
"""
    receiver.fail_first = 1
    log = tmp_path / "server.log"
    with (
        log.open("wb") as out,
        server_process(tmp_path, config, "--log-level", "debug", *flags, output=out) as url,
    ):
        r = httpx.post(url + "/v1/pre-reboot", json=body("web-1", "web"), headers=PROTO)
        assert r.status_code == 200
        assert len(receiver.wait_for(f"{SECRET_PATH}?{SECRET_QUERY}", 1)) == 1
    return log.read_text()


def test_a_server_at_debug_never_logs_a_webhook_path_or_query(
    tmp_path: Path, receiver: Receiver
) -> None:
    text = run_server_and_notify(tmp_path, receiver)
    assert "httpx" in text  # the library did log its requests, at DEBUG and INFO
    assert f"127.0.0.1:{receiver.httpd.server_address[1]}" in text  # the host is named
    assert "SECRET" not in text


def test_log_secrets_lets_libraries_log_the_whole_url(tmp_path: Path, receiver: Receiver) -> None:
    text = run_server_and_notify(tmp_path, receiver, "--log-secrets")
    assert SECRET_PATH in text


def test_cut_urls_keeps_scheme_and_host_and_drops_the_rest() -> None:
    line = 'HTTP Request: POST https://hooks.slack.com/services/T/B/X?a=1 "HTTP/1.1 200 OK"'
    assert cut_urls(line) == 'HTTP Request: POST https://hooks.slack.com/… "HTTP/1.1 200 OK"'
    assert cut_urls("to http://[::1]:9100#frag and https://h.example") == (
        "to http://[::1]:9100/… and https://h.example"
    )

"""The one base-URL allowlist (exporter.urls): what a provider client may send credentials to."""

from __future__ import annotations

import pytest

from exporter.urls import check_base_url, origin

HOSTS = frozenset({"api.smartcar.com", "auth.smartcar.com"})


def ok(url: str, *, simulator: bool = False) -> str:
    return check_base_url(url, HOSTS, simulator=simulator)


def test_https_to_a_listed_host_is_accepted_and_normalised() -> None:
    assert ok("https://api.smartcar.com/") == "https://api.smartcar.com"
    assert ok("https://api.smartcar.com:443") == "https://api.smartcar.com:443"
    assert ok("https://API.smartcar.com/v2.0") == "https://API.smartcar.com/v2.0"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://api.smartcar.com", "expected https://"),  # plain HTTP to a real host
        ("ftp://api.smartcar.com", "expected https://"),
        ("api.smartcar.com", "expected https://"),  # no scheme
        ("https://evil.example.com", "expected https://"),
        ("https://api.smartcar.com.evil.example", "expected https://"),  # suffix trick
        ("https://evil.example/api.smartcar.com", "expected https://"),  # host in the path
        ("https://xapi.smartcar.com", "expected https://"),  # prefix trick
        ("https://smartcar.com", "expected https://"),  # the parent domain
        ("https://api.smartcar.com.", "expected https://"),  # trailing dot: another name
        ("https://api.smartcar.com:8443", "expected https://"),  # another port of the host
        ("https://api%2esmartcar.com", "expected https://"),  # percent-encoded dot
        ("https://аpi.smartcar.com", "printable ASCII"),  # Cyrillic 'а' look-alike
        ("https://xn--pi-7kc.smartcar.com", "expected https://"),  # its punycode form
        ("https://api.smart\ncar.com", "printable ASCII"),  # urlsplit would drop the newline
        ("https://api.smart\tcar.com", "printable ASCII"),
        (" https://api.smartcar.com", "printable ASCII"),
        ("https://user:pw@api.smartcar.com", "credentials"),
        ("https://api.smartcar.com@evil.example", "credentials"),
        ("https://api.smartcar.com\\@evil.example", "credentials"),
        ("https://api.smartcar.com/?x=1", "query"),
        ("https://api.smartcar.com/#frag", "fragment"),
        ("https://api.smartcar.com:99999", "not a valid URL"),
        ("https://api.smartcar.com:port", "not a valid URL"),
        ("https://[::1", "not a valid URL"),
        ("", "expected a base URL"),
    ],
)
def test_everything_else_is_refused(url: str, why: str) -> None:
    for simulator in (False, True):
        with pytest.raises(ValueError, match=why):
            ok(url, simulator=simulator)


def test_non_text_is_refused() -> None:
    for value in (None, 42, b"https://api.smartcar.com", ["https://api.smartcar.com"]):
        with pytest.raises(ValueError, match="expected a base URL"):
            check_base_url(value, HOSTS, simulator=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "https://127.0.0.1:8443/",
        "http://localhost:9000",
        "http://[::1]:9000",
        "http://LOCALHOST:9000",
    ],
)
def test_loopback_only_for_a_simulator_account(url: str) -> None:
    assert ok(url, simulator=True) == url.rstrip("/")
    with pytest.raises(ValueError, match="only for a simulator account"):
        ok(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1",  # no port: never the simulator
        "http://127.0.0.1:0",
        "ws://127.0.0.1:8080",
        "http://user@127.0.0.1:8080",
    ],
)
def test_loopback_needs_http_and_an_explicit_port(url: str) -> None:
    with pytest.raises(ValueError):
        ok(url, simulator=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:8080",  # other loopback addresses are not the simulator
        "http://10.0.0.1:80",
        "http://0.0.0.0:8080",
        "http://[::ffff:127.0.0.1]:8080",
        "http://localhost.evil.example:8080",
        "http://2130706433:8080",  # 127.0.0.1 as one integer
    ],
)
def test_a_simulator_account_still_refuses_other_hosts(url: str) -> None:
    with pytest.raises(ValueError, match="expected https://"):
        ok(url, simulator=True)


def test_origin_is_what_requests_are_checked_against() -> None:
    assert origin("https://API.smartcar.com/v2.0/vehicles?x=1") == "https://api.smartcar.com"
    assert origin("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080"
    assert origin("http://127.0.0.1:8080") != origin("http://127.0.0.1:8081")

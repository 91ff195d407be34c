"""Logs are structured and never carry secrets or full VINs."""

from __future__ import annotations

import io
import json
import logging

from exporter import logs


def capture(fmt: str, emit: object) -> str:
    buf = io.StringIO()
    logs.setup("INFO", fmt, stream=buf)
    emit(logging.getLogger("carmetrics.test"))  # type: ignore[operator]
    return buf.getvalue()


def test_json_lines_carry_the_extra_fields() -> None:
    out = capture(
        "json", lambda log: log.warning("poll failed", extra={"reason": "upstream", "code": "8153"})
    )
    rec = json.loads(out.strip().splitlines()[-1])
    assert rec["msg"] == "poll failed"
    assert rec["reason"] == "upstream"
    assert rec["code"] == "8153"
    assert rec["level"] == "WARNING"


def test_tokens_passwords_and_signatures_are_masked() -> None:
    secret_reply = '{"accessToken":"abcDEF123456","refreshToken":"zzz999","userId":"112233"}'
    out = capture(
        "text",
        lambda log: (
            log.info("reply %s", secret_reply),
            log.info(
                "url /MobileData?access_token=st2.s.AtLtoken&id_token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig"
            ),
            log.info("header Authorization: Bearer sk_live_123456789"),
            log.info("login", extra={"password": "hunter2"}),
        ),
    )
    for secret in (
        "abcDEF123456",
        "zzz999",
        "st2.s.AtLtoken",
        "eyJhbGciOiJIUzI1NiJ9",
        "sk_live_123456789",
        "hunter2",
    ):
        assert secret not in out
    assert "112233" in out  # a user id is not a secret; logs stay useful


def test_full_vins_are_shortened() -> None:
    out = capture("text", lambda log: log.info("polled HESXR1C40PS000001"))
    assert "HESXR1C40PS000001" not in out
    assert "HESXR1" in out and "0001" in out

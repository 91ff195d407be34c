"""Structured logging with secret redaction.

Log lines are either ``key=value`` text (for a terminal) or one JSON object per line (for Docker and log
shippers). A redaction filter runs on every record: values that look like tokens, passwords, signatures
or full VINs are masked, so a careless ``log.info("%s", reply)`` cannot leak a credential. The same
filter escapes control characters in every value: a line break smuggled into a query parameter (a
Connect callback's ``make=X%0A...``) must not become a second, forged log line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Final

_STD_ATTRS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
}

# Keys whose values are always masked, wherever they appear (extra=, dicts, query strings, JSON text).
_SECRET_NAMES: Final = (
    "password",
    "passwd",
    "token",
    "access_token",
    "refresh_token",
    "accessToken",
    "refreshToken",
    "idToken",
    "id_token",
    "login_token",
    "authorization",
    "client_secret",
    "secret",
    "x-signature",
    "sessionToken",
    "authCode",
)
_KV_RE: Final = re.compile(
    r"(?i)(?P<k>[\"']?(?:"
    + "|".join(re.escape(n) for n in _SECRET_NAMES)
    + r")[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<v>[^\"'&,\s}]+)"
)
_BEARER_RE: Final = re.compile(r"(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_JWT_RE: Final = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+")
_VIN_RE: Final = re.compile(r"\b([A-HJ-NPR-Z0-9]{6})([A-HJ-NPR-Z0-9]{7})([A-HJ-NPR-Z0-9]{4})\b")


def redact(text: str) -> str:
    """Mask secrets in free text. VINs keep their first 6 and last 4 characters (enough to tell cars
    apart in a log, not enough to identify one)."""
    text = _BEARER_RE.sub(lambda m: m.group(1) + " ***", text)
    text = _KV_RE.sub(lambda m: m.group("k") + "***", text)
    text = _JWT_RE.sub("***jwt***", text)
    return _VIN_RE.sub(lambda m: m.group(1) + "*******" + m.group(3), text)


_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str) -> str:
    """Control characters as visible escapes (``\\n``, ``\\x1b``): one record stays one line, and no
    terminal escape sequence from a request reaches whoever reads the log."""
    if not _CONTROL_RE.search(text):
        return text
    return _CONTROL_RE.sub(lambda m: _ESCAPES.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def mask_vin(vin: str) -> str:
    return vin[:6] + "*" * max(0, len(vin) - 10) + vin[-4:] if len(vin) > 10 else vin


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        record.msg = escape(redact(msg))
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key in _STD_ATTRS:
                continue
            if key.lower() in {n.lower() for n in _SECRET_NAMES}:
                record.__dict__[key] = "***"
            elif isinstance(value, str):
                record.__dict__[key] = escape(redact(value))
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STD_ATTRS and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_extras(record))
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        parts = [ts, record.levelname.ljust(7), f"{record.name}:", record.getMessage()]
        parts += [f"{k}={escape(str(v))}" for k, v in _extras(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


class MalformedRequestFilter(logging.Filter):
    """aiohttp logs a request it cannot parse (a 100 KB header, a 20 KB path, a bad method) at ERROR
    with a traceback quoting the input, so anyone could fill the log; the client already got its
    400. Such a record becomes one short INFO line naming the status and the error's kind."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            record.msg = "malformed HTTP request refused"
            record.args = None
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info = record.exc_text = None
            record.status = exc.code
            record.error = type(exc).__name__
        return True


def setup(level: str = "INFO", fmt: str = "text", stream: Any = None) -> None:
    """Configure the root logger once (idempotent: handlers are replaced, not stacked)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_carmetrics", False):
            root.removeHandler(h)
    handler._carmetrics = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server.filters):
        server.addFilter(MalformedRequestFilter())
    # aiohttp's access log would print every scrape; keep it for DEBUG only.
    logging.getLogger("aiohttp.access").setLevel(
        logging.DEBUG if level == "DEBUG" else logging.WARNING
    )

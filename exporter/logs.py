"""Structured logging with secret redaction.

Log lines are either ``key=value`` text (for a terminal) or one JSON object per line (for Docker and log
shippers). A redaction filter runs on every record: values that look like tokens, passwords, signatures
or full VINs are masked, so a careless ``log.info("%s", reply)`` cannot leak a credential.
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


def mask_vin(vin: str) -> str:
    return vin[:6] + "*" * max(0, len(vin) - 10) + vin[-4:] if len(vin) > 10 else vin


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        record.msg = redact(msg)
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key in _STD_ATTRS:
                continue
            if key.lower() in {n.lower() for n in _SECRET_NAMES}:
                record.__dict__[key] = "***"
            elif isinstance(value, str):
                record.__dict__[key] = redact(value)
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
        parts += [f"{k}={v}" for k, v in _extras(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


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
    # aiohttp's access log would print every scrape; keep it for DEBUG only.
    logging.getLogger("aiohttp.access").setLevel(
        logging.DEBUG if level == "DEBUG" else logging.WARNING
    )

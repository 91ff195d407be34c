"""The recorded replies in tests/fixtures/ are what their README says: the smart ones are exactly the
wheel's replies through the anonymiser, and no identifier of the originals is left in them."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from tests.fixtures.smart.anonymise import FILES, HERE, VINS, anonymise

WHEEL = Path(str(resources.files("pysmarthashtag"))) / "tests" / "replys"
ROOT = Path(__file__).resolve().parent / "fixtures"


def test_smart_fixtures_are_the_wheel_replies_anonymised() -> None:
    assert set(FILES.values()) == {str(p.relative_to(HERE)) for p in HERE.rglob("*.json")}, (
        "a fixture not made by anonymise.py (or one it makes that is missing)"
    )
    for src, dest in FILES.items():
        original = json.loads((WHEEL / src).read_text())
        assert json.loads((HERE / dest).read_text()) == anonymise(original), dest


def test_no_original_identifier_is_left() -> None:
    secrets: set[str] = set()
    for src in FILES:
        doc = json.loads((WHEEL / src).read_text())
        for key in ("sessionId", "temId", "ihuId", "iccid", "msisdn", "engineNo"):
            secrets |= {s for s in _find(doc, key) if len(s) >= 6}
    # full VINs, and a real VIN's serial part (it prefixed session ids); the wheel's own
    # placeholders (TestVIN…01) end in digits any synthetic id may share
    secrets |= set(VINS) | {vin[-8:] for vin in VINS if not vin.startswith("TestVIN")}
    assert secrets
    for path in ROOT.rglob("*.json"):
        text = path.read_text()
        leaked = sorted(s for s in secrets if s in text)
        assert not leaked, f"{path.relative_to(ROOT)} still holds {leaked}"


def _find(node: object, key: str) -> list[str]:
    if isinstance(node, dict):
        here = [str(node[key])] if isinstance(node.get(key), str | int) else []
        return here + [s for v in node.values() for s in _find(v, key)]
    if isinstance(node, list):
        return [s for v in node for s in _find(v, key)]
    return []

"""The smart parser's output, pinned value for value (type included) on a fixed set of replies.

The parser and the snapshot validation are on every poll's path and are tuned for speed
(docs/BENCHMARKS.md §1); a faster rewrite must not change a single value. The cases are the replies
recorded in the pysmarthashtag wheel, three replies of the bundled simulator
(``tests/data/smart_sim_replies.json``: a parked, a switched-on and a driving car, captured from
``bench.simproc``) and a few hundred seeded mutations of them with sentinels, whitespace, garbage and
wrong types in random leaves. ``tests/data/smart_parse_golden.json`` holds what the parser returned
for each case before the speed work (the ``repr`` of every value, so ``1`` vs ``1.0`` vs ``True``
counts). Regenerate it only for an intended behaviour change, and say so in the commit:

    python -m tests.test_smart_parse_golden --write
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.providers.base import BadReply
from exporter.providers.smart.parse import integer, num, parse_status, to_snapshot

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "smart_parse_golden.json"
REPLYS = Path(str(resources.files("pysmarthashtag"))) / "tests" / "replys"

# Values a cloud leaf has been seen to carry or could carry: sentinels, padded numbers, other
# types, non-finite numbers and strings float() would accept in odd spellings.
GARBAGE: tuple[Any, ...] = (
    "", "  ", " 12.5 ", "\u00a012\u2003", "abc", None, True, False, 0, 1, 2, 3, 7, 15, -1, 101,
    2047, "2047", "101", "1", "0", "2", "3", "15", "24", "-0", "true", "false", "TRUE", " 1 ",
    1e308, -5.5, 400.0, "nan", "inf", "-inf", "1_000", "0x10", "1e3", "1e400", [], {}, [1],
    {"a": 1}, 10**30, "engine_running", "engine_off", 12.25, "35.8", "-40.0", "99999999",
)  # fmt: skip


def _load(name: str) -> Any:
    return json.loads((REPLYS / name).read_text())["data"]


def _leaves(node: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*prefix, k))
    else:
        yield prefix


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = value


def cases() -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, keyword arguments of parse_status), always the same ones in the same order."""
    statuses = {
        name: _load(name)
        for name in ("vehicle_info.json", "vehicle_info2.json", "vehicle_info_dc_charging.json")
    }
    socs = {"none": None, "soc_80": _load("soc_80.json"), "soc_90": _load("soc_90.json")}
    dc_info = _load("dc_charge_info.json")
    for sname, status in statuses.items():
        for soc_name, soc in socs.items():
            for series in ("", "HX11", "HC11", "HY11"):
                yield (
                    f"{sname}/{soc_name}/{series}",
                    {"status": status, "soc": soc, "series": series},
                )
        yield f"{sname}/dc_info", {"status": status, "series": "HY11", "dc_info": dc_info}
    sim = json.loads((DATA / "smart_sim_replies.json").read_text())
    for name, r in sorted(sim.items()):
        yield f"sim/{name}", {"status": r["status"], "soc": r["soc"], "state": r["state"]}
        statuses[f"sim/{name}"] = r["status"]
    rng = random.Random(19)
    bases = sorted(statuses)
    for i in range(400):
        base = rng.choice(bases)
        data = copy.deepcopy(statuses[base])
        paths = sorted(_leaves(data))
        for _ in range(rng.randint(1, 12)):
            _set(data, rng.choice(paths), rng.choice(GARBAGE))
        state = {"powerMode": rng.choice(GARBAGE)} if i % 3 == 0 else None
        soc = {"soc": rng.choice(GARBAGE)} if i % 2 == 0 else rng.choice(list(socs.values()))
        series = rng.choice(("", "HX11", "HY11", "hy11"))
        dc = (
            {"chargeI": rng.choice(GARBAGE), "chargeU": rng.choice(GARBAGE)} if i % 5 == 0 else None
        )
        yield (
            f"mutated/{i}",
            {"status": data, "soc": soc, "state": state, "series": series, "dc_info": dc},
        )


def outcome(kwargs: dict[str, Any]) -> dict[str, Any]:
    """What the parser and the snapshot make of one case, as comparable text."""
    args = dict(kwargs)
    status = args.pop("status")
    try:
        parsed = parse_status(status, **args)
    except BadReply as exc:
        return {"error": f"BadReply: {exc}"}
    try:
        snap = to_snapshot("VIN", parsed, 1.5)
    except ValueError as exc:  # the signal table refusing a value: its message is pinned too
        return {"error": f"ValueError: {exc}"}
    values = {k: repr(v) for k, v in parsed.values.items()}
    return {
        "car_time": repr(parsed.car_time),
        "values": values,
        # the validated snapshot: unknowns dropped, numbers as float, last_update added
        "snapshot": {k: repr(v) for k, v in snap.values.items() if repr(v) != values.get(k)},
        "snapshot_keys": len(snap.values),
    }


def pinned(name: str, kwargs: dict[str, Any]) -> Any:
    """The outcome in full for the recorded and simulator replies (a failure shows the value),
    its SHA-256 for the mutations (hundreds of them would make a megabyte of expectations)."""
    got = outcome(kwargs)
    if not name.startswith("mutated/"):
        return got
    return hashlib.sha256(json.dumps(got, sort_keys=True).encode()).hexdigest()


def test_the_parser_returns_exactly_what_it_returned_before() -> None:
    golden = json.loads(GOLDEN.read_text())
    got = {name: pinned(name, kwargs) for name, kwargs in cases()}
    assert list(got) == list(golden)  # the same cases: a changed generator cannot pass silently
    full = [o for o in golden.values() if isinstance(o, dict)]
    assert len(full) > 40 and not any("error" in o for o in full)
    for name in golden:
        assert got[name] == golden[name], name


@pytest.mark.parametrize("name", ["vehicle_info.json/soc_80/HX11", "sim/driving"])
def test_the_golden_file_is_not_trivial(name: str) -> None:
    pinned_values = json.loads(GOLDEN.read_text())[name]["values"]
    assert sum(v != "None" for v in pinned_values.values()) > 30


def _num_reference(value: object) -> float | None:
    """num() as first written: the definition the fast path must keep."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        out = float(value)
    elif isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return out if math.isfinite(out) else None


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="0123456789.-+eE_ \t\u00a0\u2003naifNIF", max_size=18),
        st.text(max_size=6),
        st.floats(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.booleans(),
        st.none(),
        st.lists(st.integers(), max_size=1),
    )
)
def test_num_and_integer_equal_their_first_definitions(value: object) -> None:
    assert repr(num(value)) == repr(_num_reference(value))
    got = _num_reference(value)
    assert repr(integer(value)) == repr(int(got) if got is not None and got.is_integer() else None)


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    GOLDEN.write_text(
        json.dumps({name: pinned(name, kwargs) for name, kwargs in cases()}, indent=0) + "\n"
    )

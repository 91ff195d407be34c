"""What carmetrics spends per vehicle-poll around the HTTP, stage by stage, without the network.

Benchmark 1 (``bench.poll_throughput``) gives the whole poll's CPU against the bare client's; this
script splits the part that is carmetrics' own (the bare client does none of it except signing) on
real replies of the bundled simulator (``tests/data/smart_sim_replies.json``: a parked, a
switched-on and a driving car), each status/soc/state triple wrapped in the cloud's envelope:

* **envelope x3**: ``parse_envelope`` of the three replies (JSON decoding, the code check);
* **parse_status**: the three ``data`` parts to canonical values;
* **snapshot**: ``to_snapshot`` (the signal table's checks, the frozen mapping);
* **history row**: ``Codec.row`` of that snapshot (what ``History.add`` builds per new report);
* **sign x3**: the canonical queries and the signed headers of the three GETs (the bare client
  signs too).

Each figure is CPU time (``time.process_time``) per poll, the best of ``--rounds`` rounds: on a
shared machine the best round is the one least disturbed. Run it in two trees to compare them:

    python -m bench.poll_stages --rounds 20
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from bench.common import table
from exporter import history_layout as layout
from exporter.history import migrate
from exporter.providers.smart import signing
from exporter.providers.smart.parse import parse_status, to_snapshot
from exporter.providers.smart.transport import RawReply, parse_envelope

REPLIES = Path(__file__).resolve().parent.parent / "tests" / "data" / "smart_sim_replies.json"
QUERIES = (
    ("/remote-control/vehicle/status/VIN", [("latest", "True"), ("target", "basic,more")]),
    ("/remote-control/vehicle/status/soc/VIN", [("setting", "charging")]),
    ("/remote-control/vehicle/status/state/VIN", []),
)


def _raw(data: Any) -> RawReply:
    text = json.dumps({"code": "1000", "data": data, "message": "operation succeed"})
    headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json; charset=utf-8"}))
    return RawReply(200, headers, text, "http://127.0.0.1/x")


def stages() -> tuple[int, dict[str, Callable[[], object]]]:
    """(polls per call, the stage functions); each call runs the stage for every reply triple."""
    triples = [
        tuple(_raw(r[k]) for k in ("status", "soc", "state"))
        for r in json.loads(REPLIES.read_text()).values()
    ]
    datas = [[parse_envelope(x).data for x in t] for t in triples]
    parsed = [parse_status(s, soc, st, series="HX11") for s, soc, st in datas]
    snaps = [to_snapshot("HESXR1C43SG815785", p, 1.0) for p in parsed]
    conn = sqlite3.connect(":memory:")
    migrate(conn)
    codec = layout.codec(conn)
    region = signing.EU

    def envelopes() -> None:
        for t in triples:
            for x in t:
                parse_envelope(x)

    def parses() -> None:
        for s, soc, st in datas:
            parse_status(s, soc, st, series="HX11")

    def snapshots() -> None:
        for p in parsed:
            to_snapshot("HESXR1C43SG815785", p, 1.0)

    def rows() -> None:
        for s in snaps:
            codec.row(s)

    def sign() -> None:
        for _ in triples:
            for path, query in QUERIES:
                qs = signing.canonical_query([*query, ("userId", "1234567")])
                signing.signed_headers(
                    region,
                    method="GET",
                    path=path,
                    query=qs,
                    body=None,
                    timestamp_ms="1700000000000",
                    nonce=region.new_nonce(),
                    device_id="0123456789abcdef",
                    token="token",
                )

    return len(triples), {
        "envelope x3": envelopes,
        "parse_status": parses,
        "snapshot": snapshots,
        "history row": rows,
        "sign x3": sign,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=200, help="calls per round")
    args = ap.parse_args(argv)
    per, fns = stages()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(args.rounds):
        for name, fn in fns.items():  # interleaved: a noisy moment hits every stage alike
            t = time.process_time()
            for _ in range(args.repeat):
                fn()
            best[name] = min(best[name], (time.process_time() - t) / args.repeat / per)
    rows: list[list[object]] = [[name, f"{s * 1e6:.1f}"] for name, s in best.items()]
    rows.append(["total", f"{sum(best.values()) * 1e6:.1f}"])
    print(table(["stage", "µs CPU per vehicle-poll (best round)"], rows))


if __name__ == "__main__":
    main()

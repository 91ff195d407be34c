"""The embedded simulator's memory across restarts: ``<db>.simulator.json`` beside the history.

Why a recipe and not a dump of every object: a simulated car is a deterministic function of the
seed, the moment its life started and what was done to it (commands, a cable plugged in), so the
file holds exactly that (the fleet's recipe, the event list and the clock position) and a restarted
simulator replays it. The cars' physical state at the saved moment (odometer, state of charge,
position, last report) is stored too, and the replayed cars must match it: a file written by a
simulator whose car model has changed since is refused as foreign rather than trusted.

Secrets: the clouds' issued tokens (smart sessions, Smartcar access/refresh and application
tokens) are kept as SHA-256 digests only, never their values. A simulated cloud recognises a
presented token by its digest (``digest``), so a restarted simulator still accepts the tokens the
exporter holds, while the file itself opens nothing, with or without a vault key. Written
atomically (temporary file, fsync, rename), mode 0600 like the history.

A file that cannot be read, is not JSON, is of another format or version, or was made for another
fleet (seed, models, demo) raises :class:`StateError`; the runtime logs its one line and starts a
fresh simulator (the history itself refuses reports older than what it holds, so nothing is
replayed into it either way).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:
    from exporter.dbtarget import DbTarget

from exporter.config import SimulatorConfig
from exporter.simulator.fleet import Event, Fleet

FORMAT: Final = "carmetrics-simulator-state"
VERSION: Final = 1
_DIGEST: Final = "sha256:"
# how closely a replayed car must match what was saved (float sums in another order, nothing more)
_TOLERANCE: Final = 1e-6
_V = TypeVar("_V")


class StateError(Exception):
    """The saved state cannot be used; the message says why in one line."""


def state_path(db: DbTarget) -> Path | None:
    """Where the simulator state of the history ``db`` lives: beside the file; a PostgreSQL
    history has no file beside it, so the demo resumes from its history only (None)."""
    if not isinstance(db, Path):
        return None
    return db.with_name(db.name + ".simulator.json")


def digest(value: str) -> str:
    """What is stored instead of a token: its SHA-256, marked so it is never taken for a token."""
    if value.startswith(_DIGEST):
        return value
    return _DIGEST + hashlib.sha256(value.encode()).hexdigest()


def lookup(table: Mapping[str, _V], value: str | None) -> _V | None:
    """A token's entry, issued by this simulator (by value) or by its predecessor (by digest)."""
    if not value:
        return None
    found = table.get(value)
    if found is None and not value.startswith(_DIGEST):
        found = table.get(digest(value))
    return found


# --- the file ---------------------------------------------------------------------------------------


def read(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is none; StateError when it is unusable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise StateError(f"{path} is not a simulator state file (not JSON)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StateError(f"{path} is not a simulator state file (no {FORMAT!r} format)")
    if data.get("version") != VERSION:
        raise StateError(
            f"{path} is simulator state version {data.get('version')!r}; this carmetrics "
            f"reads version {VERSION}"
        )
    return data


def write(path: Path, data: Mapping[str, Any]) -> None:
    """Replace ``path`` atomically with ``data``, readable by the owner only (``mkstemp`` creates
    0600, and a unique name per write keeps two writers from sharing a temporary file)."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"), allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --- the fleet --------------------------------------------------------------------------------------


def _recipe(cfg: SimulatorConfig, demo: bool) -> dict[str, Any]:
    return {
        "seed": cfg.seed,
        "smart_vehicles": list(cfg.smart_vehicles),
        "smartcar_vehicles": list(cfg.smartcar_vehicles),
        "demo": demo,
    }


def _car(fleet: Fleet, vin: str, at: float) -> dict[str, float]:
    car = fleet.vehicle(vin)
    live = car.live_state(at)  # the car itself: no listeners are told (nothing is served now)
    return {
        "t0": car.t0,
        "odometer_km": live.odometer_km,
        "soc": live.soc,
        "lat": live.lat,
        "lon": live.lon,
        "report_time": car.state(at).report_time,
    }


def fleet_state(cfg: SimulatorConfig, fleet: Fleet, *, demo: bool, at: float) -> dict[str, Any]:
    """The fleet's recipe, events and the cars as they are at ``at`` (the clock's now)."""
    fleet.tick()  # reports due by now reach their listeners (webhooks) before they are read here
    return {
        "recipe": _recipe(cfg, demo),
        "clock": at,
        "cars": {vin: _car(fleet, vin, at) for vin in fleet.vins},
        "events": [
            [e.t, e.vin, e.kind, e.name, e.params, e.deferred, e.refuse] for e in fleet.events
        ],
    }


def check_recipe(saved: Mapping[str, Any], cfg: SimulatorConfig, demo: bool) -> None:
    """StateError unless ``saved`` was made for the fleet ``cfg`` describes."""
    want = _recipe(cfg, demo)
    got = saved.get("recipe")
    if got != want:
        diff = (
            ", ".join(k for k in want if not isinstance(got, dict) or got.get(k) != want[k])
            or "recipe"
        )
        raise StateError(f"the saved simulator was made for another fleet ({diff} differ)")


def starts(saved: Mapping[str, Any], vins: list[str]) -> dict[str, float]:
    """Each car's saved start; StateError when the cars are not the ones saved."""
    cars = saved.get("cars")
    if not isinstance(cars, dict) or sorted(cars) != sorted(vins):
        raise StateError("the saved simulator holds other cars than this fleet")
    out = {}
    for vin, car in cars.items():
        t0 = car.get("t0") if isinstance(car, dict) else None
        if not isinstance(t0, int | float) or not math.isfinite(t0):
            raise StateError(f"the saved car {vin[:3]}… has no start time")
        out[vin] = float(t0)
    return out


def events(saved: Mapping[str, Any]) -> list[Event]:
    raw = saved.get("events", [])
    if not isinstance(raw, list):
        raise StateError("the saved fleet events are not a list")
    out = []
    try:
        for t, vin, kind, name, params, deferred, refuse in raw:
            if not isinstance(params, dict):
                raise TypeError("params")
            out.append(
                Event(float(t), str(vin), str(kind), str(name), params, bool(deferred), str(refuse))
            )
    except (TypeError, ValueError):
        raise StateError("a saved fleet event is malformed") from None
    return out


def restore_fleet(fleet: Fleet, saved: Mapping[str, Any]) -> float:
    """Replay the saved events and bring every car to the saved moment; the moment returned.

    CPU-bound (a car catches up on every simulated minute it drove): run it before the clouds
    serve the fleet, off the event loop."""
    at = saved.get("clock")
    if not isinstance(at, int | float) or not math.isfinite(at):
        raise StateError("the saved simulator has no clock position")
    try:
        fleet.replay(events(saved))
    except (KeyError, ValueError, TypeError) as exc:
        raise StateError(f"a saved fleet event does not replay ({exc})") from None
    cars = saved["cars"]
    for vin in fleet.vins:
        now = _car(fleet, vin, float(at))
        for key, value in cars[vin].items():
            if key == "t0":
                continue
            if not isinstance(value, int | float) or not math.isclose(
                now.get(key, math.nan), value, rel_tol=_TOLERANCE, abs_tol=_TOLERANCE
            ):
                raise StateError(
                    f"the saved car {vin[:3]}… does not replay to its saved {key} (a simulator "
                    "of another version wrote the file)"
                )
    return float(at)

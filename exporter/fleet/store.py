"""The fleet's shared state in PostgreSQL: instances, account leases, the fleet's cars and their
poll times, and which instance accepted which command.

Every time that decides ownership is the database's ``now()``: one clock for every instance, so
a lease expires at the same moment for all of them however far their own clocks drift. Poll times
(``polled_at``/``next_at``) are the exporter's clock, as the scheduler keeps them.

The tables are versioned by a table of their own (``fleet_schema``), apart from the history's
migrations, and created under an advisory lock so instances starting together migrate once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg

MIGRATION_LOCK: Final = 0x63_6D_66_6C  # "cmfl": pg_advisory_xact_lock key of the migrations

_V1: Final = """
CREATE TABLE IF NOT EXISTS fleet_instances (
  id text PRIMARY KEY,
  url text NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS fleet_leases (
  account text PRIMARY KEY,
  owner text,
  generation bigint NOT NULL DEFAULT 0,
  expires_at timestamptz NOT NULL DEFAULT '-infinity',
  acquired_at timestamptz,
  -- who held it before the current owner, and until when (where the owner's schedule starts)
  previous_owner text,
  previous_expiry timestamptz
);
CREATE TABLE IF NOT EXISTS fleet_vehicles (
  vin text PRIMARY KEY,
  account text NOT NULL,
  provider text NOT NULL,
  make text NOT NULL DEFAULT '',
  model text NOT NULL DEFAULT '',
  year text NOT NULL DEFAULT '',
  supported_commands text[] NOT NULL DEFAULT '{}',
  polled_at double precision,
  next_at double precision,
  polled_by text,
  seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS fleet_vehicles_account ON fleet_vehicles (account);
CREATE TABLE IF NOT EXISTS fleet_commands (
  id text PRIMARY KEY,
  instance text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
"""

# Append-only: (version, SQL). Never edit a released entry; add a new one.
MIGRATIONS: Final = [(1, _V1)]


@dataclass(frozen=True, slots=True)
class Claimed:
    account: str
    generation: int
    previous: str | None  # the owner whose lease had expired (a takeover), None if it was free
    previous_expiry: float  # when that lease ran out (epoch seconds, the database's clock)


@dataclass(frozen=True, slots=True)
class Owner:
    instance: str
    url: str


@dataclass(frozen=True, slots=True)
class PollTime:
    vin: str
    polled_at: float | None  # None: only the next poll time is known (an account let go of)
    next_at: float | None


async def migrate(conn: psycopg.AsyncConnection[Any]) -> int:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS fleet_schema (version integer NOT NULL)")
        cur = await conn.execute("SELECT max(version) FROM fleet_schema")
        row = await cur.fetchone()
        version = int(row[0]) if row and row[0] is not None else 0
        for v, sql in MIGRATIONS:
            if v > version:
                await conn.execute(sql)
                await conn.execute("INSERT INTO fleet_schema (version) VALUES (%s)", (v,))
                version = v
    return version


class Store:
    """SQL of the fleet, one method per question; the caller owns the connection and commits
    (it runs in autocommit mode: each statement is its own transaction unless grouped)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], me: str) -> None:
        self.conn = conn
        self.me = me

    async def add_accounts(self, accounts: Iterable[str]) -> None:
        await self.conn.execute(
            "INSERT INTO fleet_leases (account) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
            (list(accounts),),
        )

    async def heartbeat(self, url: str, lease: float) -> int:
        """Say this instance lives for ``lease`` more seconds; the number of live instances."""
        await self.conn.execute(
            """INSERT INTO fleet_instances (id, url, expires_at)
               VALUES (%s, %s, now() + make_interval(secs => %s))
               ON CONFLICT (id) DO UPDATE SET url = excluded.url, expires_at = excluded.expires_at""",
            (self.me, url, lease),
        )
        cur = await self.conn.execute(
            "SELECT count(*) FROM fleet_instances WHERE expires_at > now()"
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 1

    async def renew(self, lease: float) -> dict[str, int]:
        """Extend every lease this instance still holds; account -> generation of those it does.
        A lease already expired is not renewed: another instance may be about to claim it."""
        cur = await self.conn.execute(
            """UPDATE fleet_leases SET expires_at = now() + make_interval(secs => %s)
               WHERE owner = %s AND expires_at > now() RETURNING account, generation""",
            (lease, self.me),
        )
        return {str(a): int(g) for a, g in await cur.fetchall()}

    async def claim(self, accounts: Sequence[str], k: int, lease: float) -> list[Claimed]:
        """Take up to ``k`` of ``accounts`` that nobody holds (released, or whose lease expired).

        ``SKIP LOCKED`` lets instances claim at the same moment without waiting on each other;
        the order (a hash of account and instance) spreads their picks apart."""
        if k <= 0:
            return []
        cur = await self.conn.execute(
            """WITH free AS (
                 SELECT account, owner AS previous, expires_at AS expired FROM fleet_leases
                 WHERE account = ANY(%(accounts)s) AND (owner IS NULL OR expires_at <= now())
                 ORDER BY md5(account || %(me)s) LIMIT %(k)s
                 FOR UPDATE SKIP LOCKED)
               UPDATE fleet_leases l
               SET owner = %(me)s, generation = l.generation + 1, acquired_at = now(),
                   expires_at = now() + make_interval(secs => %(lease)s),
                   previous_owner = free.previous, previous_expiry = free.expired
               FROM free WHERE l.account = free.account
               RETURNING l.account, l.generation, free.previous,
                 coalesce(extract(epoch FROM free.expired), 0)::float8""",
            {"accounts": list(accounts), "me": self.me, "k": k, "lease": lease},
        )
        return [
            Claimed(str(a), int(g), None if p is None or p == self.me else str(p), float(e))
            for a, g, p, e in await cur.fetchall()
        ]

    async def claims(self, accounts: Sequence[str]) -> list[Claimed]:
        """How this instance came to hold ``accounts`` (a claim whose answer it never read)."""
        cur = await self.conn.execute(
            """SELECT account, generation, previous_owner,
                 coalesce(extract(epoch FROM previous_expiry), 0)::float8
               FROM fleet_leases WHERE owner = %s AND account = ANY(%s)""",
            (self.me, list(accounts)),
        )
        return [
            Claimed(str(a), int(g), None if p is None or p == self.me else str(p), float(e))
            for a, g, p, e in await cur.fetchall()
        ]

    async def release(self, account: str) -> None:
        await self.conn.execute(
            """UPDATE fleet_leases SET owner = NULL, expires_at = now()
               WHERE account = %s AND owner = %s""",
            (account, self.me),
        )

    async def leave(self) -> None:
        """A clean stop: every lease free at once, the instance gone from the count."""
        async with self.conn.transaction():
            await self.conn.execute(
                "UPDATE fleet_leases SET owner = NULL, expires_at = now() WHERE owner = %s",
                (self.me,),
            )
            await self.conn.execute("DELETE FROM fleet_instances WHERE id = %s", (self.me,))

    async def seconds_to_next_expiry(self, accounts: Sequence[str]) -> float | None:
        """Until the first lease of another instance on ``accounts`` runs out (a dead instance's
        accounts are claimed the moment they are free, not a heartbeat later)."""
        cur = await self.conn.execute(
            """SELECT extract(epoch FROM min(expires_at) - now()) FROM fleet_leases
               WHERE account = ANY(%s) AND owner IS NOT NULL AND owner <> %s
                 AND expires_at > now()""",
            (list(accounts), self.me),
        )
        row = await cur.fetchone()
        return float(row[0]) if row and row[0] is not None else None

    # --- cars -------------------------------------------------------------------------------------
    async def add_vehicles(
        self, cars: Sequence[tuple[str, str, str, str, str, str, list[str]]]
    ) -> None:
        """(vin, account, provider, make, model, year, supported commands) of cars a holder
        listed; one pipelined statement per car."""
        if not cars:
            return
        async with self.conn.cursor() as cur:
            await cur.executemany(
                """INSERT INTO fleet_vehicles
                     (vin, account, provider, make, model, year, supported_commands, seen_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, now())
                   ON CONFLICT (vin) DO UPDATE SET account = excluded.account,
                     provider = excluded.provider, make = excluded.make, model = excluded.model,
                     year = excluded.year, supported_commands = excluded.supported_commands,
                     seen_at = now()""",
                cars,
            )

    async def remove_vehicle(self, vin: str, accounts: Sequence[str]) -> None:
        """A car that left its account (one of ``accounts``, those this instance holds)."""
        await self.conn.execute(
            "DELETE FROM fleet_vehicles WHERE vin = %s AND account = ANY(%s)", (vin, list(accounts))
        )

    async def record_polls(self, polls: Sequence[PollTime]) -> None:
        if not polls:
            return
        await self.conn.execute(
            """UPDATE fleet_vehicles v SET polled_at = coalesce(p.polled_at, v.polled_at),
                 next_at = p.next_at, polled_by = %s
               FROM unnest(%s::text[], %s::float8[], %s::float8[]) AS p(vin, polled_at, next_at)
               WHERE v.vin = p.vin""",
            (
                self.me,
                [p.vin for p in polls],
                [p.polled_at for p in polls],
                [p.next_at for p in polls],
            ),
        )

    async def poll_times(self, accounts: Sequence[str]) -> dict[str, list[PollTime]]:
        """Account -> where its previous holder left each car's schedule."""
        cur = await self.conn.execute(
            """SELECT account, vin, polled_at, next_at FROM fleet_vehicles
               WHERE account = ANY(%s) AND next_at IS NOT NULL""",
            (list(accounts),),
        )
        out: dict[str, list[PollTime]] = {}
        for a, v, p, n in await cur.fetchall():
            out.setdefault(str(a), []).append(
                PollTime(str(v), None if p is None else float(p), float(n))
            )
        return out

    async def vehicles(self) -> list[dict[str, Any]]:
        cur = await self.conn.execute(
            """SELECT v.vin, v.provider, v.account, v.make, v.model, v.year,
                      v.supported_commands, v.polled_at, l.owner
               FROM fleet_vehicles v LEFT JOIN fleet_leases l
                 ON l.account = v.account AND l.expires_at > now()
               ORDER BY v.vin"""
        )
        keys = (
            "vin",
            "provider",
            "account",
            "make",
            "model",
            "year",
            "supported_commands",
            "last_poll",
            "instance",
        )
        return [dict(zip(keys, row, strict=True)) for row in await cur.fetchall()]

    # --- routing ----------------------------------------------------------------------------------
    async def owner_of_account(self, account: str) -> Owner | None:
        cur = await self.conn.execute(
            """SELECT i.id, i.url FROM fleet_leases l JOIN fleet_instances i ON i.id = l.owner
               WHERE l.account = %s AND l.expires_at > now()""",
            (account,),
        )
        row = await cur.fetchone()
        return Owner(str(row[0]), str(row[1])) if row else None

    async def account_of_vin(self, vin: str) -> str | None:
        cur = await self.conn.execute("SELECT account FROM fleet_vehicles WHERE vin = %s", (vin,))
        row = await cur.fetchone()
        return str(row[0]) if row else None

    async def record_command(self, command_id: str) -> None:
        await self.conn.execute(
            "INSERT INTO fleet_commands (id, instance) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (command_id, self.me),
        )

    async def owner_of_command(self, command_id: str) -> Owner | None:
        cur = await self.conn.execute(
            """SELECT i.id, i.url FROM fleet_commands c JOIN fleet_instances i ON i.id = c.instance
               WHERE c.id = %s AND i.expires_at > now()""",
            (command_id,),
        )
        row = await cur.fetchone()
        return Owner(str(row[0]), str(row[1])) if row else None

    async def instances(self) -> list[tuple[str, str]]:
        cur = await self.conn.execute(
            "SELECT id, url FROM fleet_instances WHERE expires_at > now() ORDER BY id"
        )
        return [(str(i), str(u)) for i, u in await cur.fetchall()]

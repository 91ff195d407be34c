"""Ghost cars: this exporter's retained topics of cars it no longer knows, found on the broker.

A car removed from its account while the exporter was down never reaches the publisher's
"removed" hook, yet its retained state topics and discovery configs stay on the broker, and Home
Assistant keeps showing the car. So after each (re)connect, once the runtime has listed every
account (the hub then knows every car there is), the publisher reads the broker's retained
messages under its own topics and clears those of cars it does not know.

What counts as ours, and nothing else:

- a state topic ``<prefix>/<vin>/<suffix>`` whose first suffix level is one the publisher writes
  (a signal, a derived topic, ``command``); ``<prefix>`` is this exporter's own;
- a discovery config ``<discovery_prefix>/<component>/carmetrics_<vin>/<key>/config`` whose
  payload says it is this exporter's: ``unique_id`` is ``carmetrics_<vin>_<key>`` and its device
  hangs off this exporter's bridge (``via_device``), so another integration's configs, and those of
  another carmetrics with another ``topic_prefix``, are never touched.

The read is bounded for big fleets and busy brokers: the retained messages arrive right after the
subscription, so collecting stops after a short quiet spell, at a time limit, or at a message cap,
whichever comes first; a ghost not seen this time is found on the next connect.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import aiomqtt

from exporter.mqtt import topics as t
from exporter.signals import SIGNALS

QUIET: Final = 0.5  # s (wall) without a retained message: the broker has sent them all
TIME_LIMIT: Final = 10.0  # s (wall) at most, however many retained messages the broker holds
MAX_MESSAGES: Final = 200_000  # at most this many are looked at per connect
NODE: Final = "carmetrics_"  # the discovery node of a car (discovery.Discovery.node)

# the first level of every suffix the publisher writes under <prefix>/<vin>/
OWN_SUFFIXES: Final = frozenset({s.name for s in SIGNALS} | t.RESERVED | {t.COMMAND})


@dataclass(frozen=True, slots=True)
class Ours:
    """What on the broker this exporter wrote: its topics and its bridge's id."""

    topics: t.Topics
    bridge_id: str

    def filters(self) -> list[str]:
        """The subscriptions that deliver every candidate (and, for discovery, more: checked)."""
        return [f"{self.topics.prefix}/+/#", f"{self.topics.discovery_prefix}/+/+/+/config"]

    def vin_of(self, topic: str, payload: bytes) -> str | None:
        """The VIN of one of our car topics, else None (not ours, or not a car's)."""
        prefix = self.topics.prefix + "/"
        if topic.startswith(prefix):
            vin, _, suffix = topic[len(prefix) :].partition("/")
            if vin and suffix.split("/")[0] in OWN_SUFFIXES:
                return vin
            return None
        head = self.topics.discovery_prefix + "/"
        if not topic.startswith(head):
            return None
        levels = topic[len(head) :].split("/")
        if len(levels) != 4 or levels[3] != "config" or not levels[1].startswith(NODE):
            return None
        node, key = levels[1], levels[2]
        try:
            config = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(config, dict) or config.get("unique_id") != f"{node}_{key}":
            return None
        device = config.get("device")
        if not isinstance(device, dict) or device.get("via_device") != self.bridge_id:
            return None
        vin = node[len(NODE) :]
        return vin or None


def ghosts(
    ours: Ours, retained: Mapping[str, bytes], known: Collection[str]
) -> dict[str, set[str]]:
    """VIN -> its retained topics, for every car of ours the exporter does not know."""
    out: dict[str, set[str]] = {}
    for topic, payload in retained.items():
        vin = ours.vin_of(topic, payload)
        if vin is not None and vin not in known:
            out.setdefault(vin, set()).add(topic)
    return out


async def retained(
    client: aiomqtt.Client,
    filters: Iterable[str],
    *,
    quiet: float = QUIET,
    time_limit: float = TIME_LIMIT,
    max_messages: int = MAX_MESSAGES,
) -> dict[str, bytes]:
    """Topic -> payload of the retained messages the broker sends for ``filters`` (on a client
    used for nothing else), collected until a ``quiet`` spell, ``time_limit`` or
    ``max_messages``. Live messages (not retained) are skipped."""
    loop = asyncio.get_running_loop()
    end = loop.time() + time_limit
    await client.subscribe([(f, 0) for f in filters])
    found: dict[str, bytes] = {}
    messages = client.messages
    seen = 0
    while seen < max_messages:
        left = end - loop.time()
        if left <= 0:
            break
        try:
            m = await asyncio.wait_for(anext(messages), min(quiet, left))
        except TimeoutError:
            break
        seen += 1
        if m.retain and isinstance(m.payload, bytes) and m.payload:
            found[m.topic.value] = m.payload
    return found

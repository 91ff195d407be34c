"""The MQTT publisher: the hub's news onto a broker, and the broker's commands into the service.

It adds no polling: it listens to the hub (a NEW report, a vehicle added or removed) and to one slow
status tick (data age and availability change while nothing arrives). Those only mark a car *dirty*;
what to send is worked out when the connection is free to send it, from the hub's latest report
against what the broker was last confirmed to hold. So while the broker is down nothing piles up:
the backlog is at most a flag per car and one message per result topic, and on reconnect the latest
state of every car is published in full (the broker may have restarted without its retained
messages), never a replay of everything that happened meanwhile.

Reconnects back off from ``reconnect_min`` to ``reconnect_max`` in wall time (the broker lives in
real time even when the demo's cars run fast). After each connect, once ``ready`` is set (the
runtime has listed every account), the cars that left while the exporter was away are cleared too
(``exporter.mqtt.sweep``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import aiomqtt

from exporter.clock import Clock
from exporter.commands.service import CommandService
from exporter.health import Health
from exporter.hub import Hub
from exporter.logs import mask_vin
from exporter.mqtt import sweep
from exporter.mqtt import topics as t
from exporter.mqtt.bridge import CommandBridge, limit_step
from exporter.mqtt.diagnostics import budget_left, status
from exporter.mqtt.discovery import Car, Discovery
from exporter.mqtt.settings import MqttSettings
from exporter.scheduler import Scheduler
from exporter.snapshot import Snapshot, VehicleInfo

log = logging.getLogger(__name__)

BATCH: Final = 500  # messages taken per look at what is dirty
WINDOW: Final = 64  # of them, at most this many wait for their PUBACK at once
FLUSH_TIMEOUT: Final = 5.0  # s (wall) stop() waits for the last messages (offline status, results)


@dataclass(slots=True)
class Message:
    topic: str
    payload: str
    retain: bool
    kind: str = "misc"  # misc | state | config | removal
    vin: str = ""
    done: bool = False


class Publisher:
    def __init__(
        self,
        settings: MqttSettings,
        hub: Hub,
        clock: Clock,
        scheduler: Scheduler,
        health: Health,
        *,
        service: CommandService | None = None,
        export_location: bool = False,
        max_data_age: float = 7 * 86400.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        ready: asyncio.Event | None = None,
    ) -> None:
        self.settings = settings
        self.hub = hub
        self.clock = clock
        self.scheduler = scheduler
        self.health = health
        self.location = export_location
        self.max_data_age = max_data_age
        self._sleep = sleep
        # set when the hub knows every car there is (runtime.all_listed); None: never sweep
        self.ready = ready
        self.swept = 0  # ghost cars cleared (left while the exporter was away)
        self.topics = t.Topics(settings.topic_prefix, settings.discovery_prefix)
        bridge_id = settings.topic_prefix.replace("/", "_") + "_bridge"
        self.discovery = Discovery(self.topics, bridge_id=bridge_id, qos=settings.qos)
        self.ours = sweep.Ours(self.topics, bridge_id)
        self.bridge = (
            CommandBridge(service, self._result)
            if service is not None and settings.commands
            else None
        )
        self.service = service
        # what the broker is known to hold (confirmed publishes), per car
        self._sent: dict[str, dict[str, str]] = {}
        self._configs: dict[str, dict[str, str]] = {}
        # every topic ever published for a car (to clear them all when it leaves)
        self._topics: dict[str, set[str]] = {}
        self._seen: dict[str, set[str]] = {}  # topic suffixes a car's reports have filled
        self._dirty: set[str] = set()  # cars whose state may differ from _sent
        self._age_due: set[str] = set()  # cars whose data age the status tick refreshes
        self._stale_configs: set[str] = set()  # cars whose discovery may differ from _configs
        self._removed: dict[str, set[str]] = {}  # cars gone: topics to clear
        self._misc: dict[str, Message] = {}  # latest message per topic (status, results)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = False
        self.connects = 0
        self.published = 0
        hub.subscribe(self._on_report)
        hub.on_vehicle(self._on_vehicle)
        hub.on_vehicle_removed(self._on_removed)

    # --- hub hooks (synchronous, cheap: mark and wake) --------------------------------------------
    def _on_report(self, snap: Snapshot) -> None:
        self._dirty.add(snap.vin)
        self._wake.set()

    def _on_vehicle(self, info: VehicleInfo) -> None:
        self._removed.pop(info.vin, None)
        self._dirty.add(info.vin)
        self._stale_configs.add(info.vin)
        self._wake.set()

    def _on_removed(self, vin: str) -> None:
        gone = set(self._topics.pop(vin, set()))
        gone |= set(self._configs.pop(vin, {}))
        gone |= {self.topics.car(vin, s) for s in self._seen.pop(vin, set())}
        self._sent.pop(vin, None)
        self._dirty.discard(vin)
        self._stale_configs.discard(vin)
        self._removed[vin] = self._removed.get(vin, set()) | gone
        log.info(
            "mqtt: clearing a car that left", extra={"vin": mask_vin(vin), "topics": len(gone)}
        )
        self._wake.set()

    def _result(self, vin: str, body: dict[str, Any]) -> None:
        self._put(self.topics.car(vin, t.RESULT), json.dumps(body, separators=(",", ":")), False)

    def _put(self, topic: str, payload: str, retain: bool) -> None:
        self._misc.pop(topic, None)  # a newer message for a topic replaces one not yet sent
        self._misc[topic] = Message(topic, payload, retain)
        self._wake.set()

    @property
    def idle(self) -> bool:
        """Connected with nothing left to send and nothing in flight."""
        return self.connected and self._idle.is_set() and self.backlog() == 0

    def backlog(self) -> int:
        """Work waiting for the broker: bounded by the number of cars, however long it is down."""
        return (
            len(self._dirty)
            + len(self._stale_configs)
            + len(self._misc)
            + sum(len(v) for v in self._removed.values())
        )

    # --- what a car should look like on the broker ------------------------------------------------
    def _state(self, vin: str) -> dict[str, str]:
        snap = self.hub.latest(vin)
        provider = self.scheduler.provider_of(vin)
        out = t.payloads(snap, location=self.location) if snap is not None else {}
        out.update(
            status(
                vin,
                snap,
                provider,
                self.health,
                now=self.clock.now(),
                max_data_age=self.max_data_age,
            )
        )
        # the data age moves every second: between ticks only a jump (a silent car reporting
        # again) is worth a message, not every report of a car that reports often
        prev = self._sent.get(vin, {}).get(t.DATA_AGE)
        age = out.get(t.DATA_AGE)
        if (
            prev is not None
            and age is not None
            and vin not in self._age_due
            and abs(int(age) - int(prev)) < self.settings.status_interval
        ):
            out[t.DATA_AGE] = prev
        self._age_due.discard(vin)
        return out

    def _car(self, vin: str) -> Car | None:
        info = self.hub.vehicles.get(vin)
        if info is None:
            return None
        provider = self.scheduler.provider_of(vin)
        supported = self.service.supported(vin) if self.bridge and self.service else []
        return Car(
            info,
            seen=self._seen.get(vin, set()),
            supported=supported,
            limit_step=limit_step(provider.validate_command if provider else None, vin),
            budget=budget_left(provider, vin) is not None,
            location=self.location,
        )

    # --- choosing what to send next -----------------------------------------------------------------
    def _collect(self, limit: int = BATCH) -> list[Message]:
        out: list[Message] = []
        retain = self.settings.retain
        while self._misc and len(out) < limit:
            out.append(self._misc.pop(next(iter(self._misc))))
        while self._removed and len(out) < limit:
            vin, gone = self._removed.popitem()
            out.extend(Message(topic, "", True, "removal", vin) for topic in sorted(gone))
        states: list[Message] = []
        while self._dirty and len(out) + len(states) < limit:
            vin = self._dirty.pop()
            if vin not in self.hub.vehicles:
                continue
            want = self._state(vin)
            seen = self._seen.setdefault(vin, set())
            if not want.keys() <= seen:
                seen.update(want)
                self._stale_configs.add(vin)
            have = self._sent.setdefault(vin, {})
            for suffix, payload in want.items():
                if have.get(suffix) != payload:
                    states.append(
                        Message(self.topics.car(vin, suffix), payload, retain, "state", vin)
                    )
        if self.settings.discovery:
            while self._stale_configs and len(out) + len(states) < limit:
                car = self._car(self._stale_configs.pop())
                if car is not None:
                    out.extend(self._config_messages(car))
        else:
            self._stale_configs.clear()
        return out + states

    def _config_messages(self, car: Car) -> list[Message]:
        vin = car.info.vin
        want = self.discovery.car(car)
        have = self._configs.setdefault(vin, {})
        msgs = [
            Message(topic, payload, True, "config", vin)
            for topic, payload in want.items()
            if have.get(topic) != payload
        ]
        # an entity the car no longer has (a command it lost): remove its config
        msgs += [Message(topic, "", True, "config", vin) for topic in have if topic not in want]
        return msgs

    def _confirm(self, m: Message) -> None:
        m.done = True
        self.published += 1
        if m.kind == "state" and m.vin in self._sent:
            self._sent[m.vin][_suffix(self.topics, m)] = m.payload
            self._topics.setdefault(m.vin, set()).add(m.topic)
        elif m.kind == "config" and m.vin in self._configs:
            if m.payload:
                self._configs[m.vin][m.topic] = m.payload
                self._topics.setdefault(m.vin, set()).add(m.topic)
            else:
                self._configs[m.vin].pop(m.topic, None)

    def _requeue(self, batch: list[Message]) -> None:
        """Messages a lost connection left unconfirmed go back (unless something newer replaced
        them); cars are simply marked again, their state is recomputed on reconnect."""
        for m in batch:
            if m.done:
                continue
            if m.kind == "misc":
                self._misc.setdefault(m.topic, m)
            elif m.kind == "removal":
                self._removed.setdefault(m.vin, set()).add(m.topic)
            elif m.kind == "state":
                self._dirty.add(m.vin)
            else:
                self._stale_configs.add(m.vin)

    # --- the connection ---------------------------------------------------------------------------
    def _client(self, *, sweeping: bool = False) -> aiomqtt.Client:
        """The connection; ``sweeping``: a second, short one that only reads retained messages
        (its own id and no last will, so the status topic and command routing never see it)."""
        s = self.settings
        tls: ssl.SSLContext | None = None
        if s.tls:
            tls = ssl.create_default_context(cafile=s.tls_ca_file)
            if s.tls_cert_file is not None:
                tls.load_cert_chain(s.tls_cert_file, s.tls_key_file)
        client = aiomqtt.Client(
            s.host,
            s.port,
            username=s.username,
            password=s.password.reveal() if s.password is not None else None,
            identifier=f"{s.client_id}-sweep" if sweeping else s.client_id,
            will=None
            if sweeping
            else aiomqtt.Will(self.topics.status, "offline", s.qos, retain=True),
            clean_session=True,
            keepalive=s.keepalive,
            tls_context=tls,
            max_inflight_messages=2 * WINDOW,
            timeout=10,
        )
        client.pending_calls_threshold = 2 * WINDOW  # a full window is not worth a warning
        return client

    def _on_connect(self) -> None:
        """Everything again: the broker may have lost its retained messages while we were away."""
        self._sent.clear()
        self._configs.clear()
        self._dirty.update(self.hub.vehicles)
        self._stale_configs.update(self.hub.vehicles)
        self._put(self.topics.status, "online", True)
        if self.settings.discovery:
            for topic, payload in self.discovery.bridge().items():
                self._put(topic, payload, True)

    def _rediscover(self) -> None:
        """Home Assistant (re)started: hand it every discovery config again."""
        self._configs.clear()
        self._stale_configs.update(self.hub.vehicles)
        for topic, payload in self.discovery.bridge().items():
            self._put(topic, payload, True)

    async def run(self) -> None:
        delay = self.settings.reconnect_min
        s = self.settings
        while True:
            try:
                async with self._client() as client:
                    self.connected = True
                    self.connects += 1
                    delay = s.reconnect_min
                    log.info("mqtt connected", extra={"broker": f"{s.host}:{s.port}"})
                    self._on_connect()
                    if s.discovery:
                        await client.subscribe(self.topics.ha_status, s.qos)
                    if self.bridge is not None:
                        await client.subscribe(self.topics.commands, s.qos)
                    await self._serve(client)
            except (aiomqtt.MqttError, OSError) as exc:
                log.warning(
                    "mqtt connection lost; reconnecting",
                    extra={"broker": f"{s.host}:{s.port}", "error": str(exc), "retry_in_s": delay},
                )
            finally:
                self.connected = False
            await self._sleep(delay)
            delay = min(delay * 2, s.reconnect_max)

    async def _serve(self, client: aiomqtt.Client) -> None:
        tasks = [
            asyncio.create_task(self._send_loop(client), name="mqtt-send"),
            asyncio.create_task(self._receive_loop(client), name="mqtt-receive"),
        ]
        if self.ready is not None:
            tasks.append(asyncio.create_task(self._sweep(self.ready), name="mqtt-sweep"))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()

    async def _send_loop(self, client: aiomqtt.Client) -> None:
        while True:
            batch = self._collect()
            if not batch:
                self._idle.set()
                await self._wake.wait()
                self._wake.clear()
                continue
            self._idle.clear()
            try:
                await self._publish(client, batch)
            except BaseException as exc:
                self._requeue(batch)
                if isinstance(exc, BaseExceptionGroup):
                    raise _first(exc) from None
                raise

    async def _publish(self, client: aiomqtt.Client, batch: list[Message]) -> None:
        """A few publishers share the batch, so up to WINDOW messages wait for their PUBACK at
        once: one at a time would wait a round trip per message, all at once costs aiomqtt time
        that grows with the number of calls pending."""
        qos = self.settings.qos
        todo = iter(batch)

        async def worker() -> None:
            for m in todo:  # shared: each message is taken by exactly one worker
                await client.publish(m.topic, m.payload, qos, retain=m.retain)
                self._confirm(m)

        async with asyncio.TaskGroup() as tg:
            for _ in range(min(WINDOW, len(batch))):
                tg.create_task(worker())

    async def _receive_loop(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if topic == self.topics.ha_status:
                if payload.strip().lower() == b"online":
                    log.info("mqtt: Home Assistant is online; publishing discovery again")
                    self._rediscover()
                continue
            vin = self.topics.vin_of_command(topic)
            if vin is None or self.bridge is None:
                continue
            if message.retain:
                # a retained command would run again on every reconnect: never act on one
                log.warning("mqtt: retained command ignored", extra={"vin": mask_vin(vin)})
                continue
            self.bridge.handle(vin, payload)

    async def _sweep(self, ready: asyncio.Event) -> None:
        """Once per connection, when every account is listed: clear the retained topics of cars
        this exporter published once but knows no more. A failed read is only logged (the next
        connect tries again); it never drops the connection that publishes."""
        await ready.wait()
        try:
            async with self._client(sweeping=True) as reader:
                found = await sweep.retained(reader, self.ours.filters())
        except (aiomqtt.MqttError, OSError) as exc:
            log.warning("mqtt: could not look for cars that left", extra={"error": str(exc)})
            return
        except Exception:  # a bug here must not take the publishing connection down with it
            log.exception("mqtt: looking for cars that left failed")
            return
        gone = sweep.ghosts(self.ours, found, self.hub.vehicles)
        for vin, topics in gone.items():
            self._removed[vin] = self._removed.get(vin, set()) | topics
        self.swept += len(gone)
        if gone:
            log.info(
                "mqtt: clearing cars that left while the exporter was away",
                extra={"cars": len(gone), "topics": sum(len(v) for v in gone.values())},
            )
            self._wake.set()

    async def _status_tick(self) -> None:
        while True:
            await self.clock.sleep(self.settings.status_interval)
            self._dirty.update(self.hub.vehicles)
            self._age_due.update(self.hub.vehicles)
            self._wake.set()

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.run(), name="mqtt"),
            asyncio.create_task(self._status_tick(), name="mqtt-status"),
        ]

    async def stop(self) -> None:
        """Say offline (a clean disconnect does not fire the last will), flush, disconnect."""
        if self.connected:
            self._put(self.topics.status, "offline", True)
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), FLUSH_TIMEOUT)
            except TimeoutError:
                log.warning(
                    "mqtt: stopping with messages unsent", extra={"backlog": self.backlog()}
                )
        if self.bridge is not None:
            await self.bridge.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real error of a task group (a lost connection fails every worker alike)."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _suffix(tp: t.Topics, m: Message) -> str:
    return m.topic[len(tp.prefix) + 1 + len(m.vin) + 1 :]

"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The compose file is validated against the Compose Specification's JSON schema (vendored in
tests/data/compose-spec.schema.json, from check-jsonschema 0.39.0, Apache-2.0), then against what
the stack needs to actually work: pinned images, loopback-only ports, files that exist, one shared
data *directory* for the WAL-mode history, and names that agree across compose, prometheus.yml, the
Grafana provisioning and the Dockerfile.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "tests" / "data" / "compose-spec.schema.json").read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def schema_errors(doc: dict[str, Any]) -> list[str]:
    validator_cls = jsonschema.validators.validator_for(SCHEMA)
    validator_cls.check_schema(SCHEMA)
    validator = validator_cls(SCHEMA, format_checker=validator_cls.FORMAT_CHECKER)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


def env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment", {})
    if isinstance(raw, list):
        return dict(item.split("=", 1) for item in raw)
    return {k: str(v) for k, v in raw.items()}


def mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source, target, mode) of the short volume syntax."""
    out = []
    for spec in service.get("volumes", []):
        parts = spec.split(":")
        out.append((parts[0], parts[1], parts[2] if len(parts) > 2 else "rw"))
    return out


def test_compose_file_matches_the_compose_spec(compose: dict[str, Any]) -> None:
    assert schema_errors(compose) == []


def test_the_schema_check_rejects_a_broken_file(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["grafana"]["ports"] = {"3000": 3000}
    broken["services"]["prometheus"]["restart_policy"] = "always"
    errors = schema_errors(broken)
    assert any("ports" in e for e in errors), errors
    assert any("restart_policy" in e for e in errors), errors


def test_services_with_pinned_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {
        "carmetrics",
        "derive",
        "prometheus",
        "grafana",
        "mosquitto",
        "postgres",
        "fleet",
        "prometheus-fleet",
    }
    assert services["carmetrics"]["build"] == "."
    # the derive loop runs the image the carmetrics service builds, on the same history file
    assert services["derive"]["image"] == services["carmetrics"]["image"]
    assert "carmetrics db derive" in " ".join(services["derive"]["command"])
    assert (
        env(services["derive"])["CARMETRICS_EXPORTER__DB"]
        == (env(services["carmetrics"])["CARMETRICS_EXPORTER__DB"])
    )
    for name in ("prometheus", "grafana", "mosquitto", "postgres", "prometheus-fleet"):
        image = services[name]["image"]
        # PostgreSQL's releases have two parts since version 10 (17.6 is one exact release)
        exact = r"postgres:\d+\.\d+" if name == "postgres" else r"[\w./-]+:v?\d+\.\d+\.\d+"
        assert re.fullmatch(exact, image), f"{name}: pin an exact tag: {image}"


def test_ports_are_bound_to_loopback(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_mounted_files_exist_and_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes", {}))
    used = set()
    for name, svc in compose["services"].items():
        for source, _, _ in mounts(svc):
            if source.startswith("."):
                assert (ROOT / source).exists(), (name, source)
            else:
                assert source in declared, (name, source)
                used.add(source)
    assert used == declared


def test_history_directory_is_shared_with_grafana(compose: dict[str, Any]) -> None:
    services = compose["services"]
    db = Path(env(services["carmetrics"])["CARMETRICS_EXPORTER__DB"])
    exporter_mount = {t: s for s, t, _ in mounts(services["carmetrics"])}
    volume = exporter_mount[str(db.parent)]
    assert not volume.startswith("."), "the data directory must be a named volume"
    grafana_mounts = {s: (t, mode) for s, t, mode in mounts(services["grafana"])}
    target, mode = grafana_mounts[volume]
    # WAL: a reader must be able to create/update carmetrics.db-shm in the same directory
    assert mode == "rw", "mount the data directory read-write (WAL -shm); the datasource is mode=ro"
    datasources = yaml.safe_load(
        (ROOT / "grafana/provisioning/datasources/carmetrics.yml").read_text()
    )["datasources"]
    sqlite = next(d for d in datasources if d["type"] == "frser-sqlite-datasource")
    assert sqlite["jsonData"]["path"] == f"{target}/{db.name}"
    assert "mode=ro" in sqlite["jsonData"].get("pathOptions", "")
    # the same uid owns the files and reads them (Dockerfile USER == grafana user)
    assert services["grafana"]["user"] == dockerfile_user()


def test_grafana_plugin_and_provisioning_paths(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    assert re.fullmatch(
        r"frser-sqlite-datasource@\d+\.\d+\.\d+", env(grafana)["GF_PLUGINS_PREINSTALL_SYNC"]
    )
    targets = {s: t for s, t, _ in mounts(grafana)}
    assert targets["./grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load(
        (ROOT / "grafana/provisioning/dashboards/carmetrics.yml").read_text()
    )["providers"][0]
    assert provider["options"]["path"] == targets["./grafana/dashboards"]
    home = env(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(targets["./grafana/dashboards"] + "/")
    assert (ROOT / "grafana/dashboards" / Path(home).name).exists()


def test_names_agree_between_compose_prometheus_and_grafana(compose: dict[str, Any]) -> None:
    services = compose["services"]
    port = env(services["carmetrics"])["CARMETRICS_EXPORTER__PORT"]
    assert f"127.0.0.1:{port}:{port}" in services["carmetrics"]["ports"]
    prom = yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "carmetrics")
    assert job["static_configs"][0]["targets"] == [f"carmetrics:{port}"]
    prom_mounts = {s: t for s, t, _ in mounts(services["prometheus"])}
    assert (
        "--config.file=" + prom_mounts["./prometheus"] + "/prometheus.yml"
        in (services["prometheus"]["command"])
    )
    datasources = yaml.safe_load(
        (ROOT / "grafana/provisioning/datasources/carmetrics.yml").read_text()
    )["datasources"]
    assert next(d for d in datasources if d["type"] == "prometheus")["url"] == (
        "http://prometheus:9090"
    )
    # the exporter flushes its history within its 10 s shutdown; docker must wait longer
    grace = services["carmetrics"]["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > 10


# --- Dockerfile ----------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instr, _, args = line.partition(" ")
            out.append((instr.upper(), args.strip()))
    return out


def dockerfile_user() -> str:
    users = [a for i, a in dockerfile() if i == "USER"]
    return users[-1]


def final_stage() -> list[tuple[str, str]]:
    lines = dockerfile()
    start = max(i for i, (instr, _) in enumerate(lines) if instr == "FROM")
    return lines[start:]


def test_dockerfile_is_small_non_root_and_healthchecked(compose: dict[str, Any]) -> None:
    stage = final_stage()
    assert stage[0] == ("FROM", "python:3.11-slim")
    user = dockerfile_user()
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, "run as a numeric, non-root uid"
    health = next(a for i, a in stage if i == "HEALTHCHECK")
    assert "/healthz" in health and "--interval=" in health
    exposed = next(a for i, a in stage if i == "EXPOSE")
    port = env(compose["services"]["carmetrics"])["CARMETRICS_EXPORTER__PORT"]
    assert exposed == port
    cmd = json.loads(next(a for i, a in stage if i == "CMD"))
    assert json.loads(next(a for i, a in stage if i == "ENTRYPOINT")) == ["carmetrics"]
    assert cmd[0] == "run"


def test_dockerfile_copies_only_what_exists_and_is_not_ignored() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = [shlex.split(a) for i, a in dockerfile() if i == "COPY" and "--from" not in a]
    assert copies
    for args in copies:
        for source in args[:-1]:
            assert (ROOT / source).exists(), source
            assert source not in ignored, f"{source} is excluded by .dockerignore"
    for secret_like in ("secrets", "*.db", ".git", "tests"):
        assert secret_like in ignored


def test_shipped_config_under_the_compose_environment(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container reads the shipped config.toml with the service's environment on top: it must
    listen on all interfaces (Prometheus scrapes it from another container), on the published port,
    and write the history into the shared volume."""
    from exporter.config import load

    for name in ("carmetrics", "derive"):
        for key in [k for k in os.environ if k.startswith("CARMETRICS_")]:
            monkeypatch.delenv(key)
        service = compose["services"][name]
        for key, value in env(service).items():
            monkeypatch.setenv(key, value)
        config = load(ROOT / "config.toml")
        data_dir = next(t for s, t, _ in mounts(service) if s == "carmetrics-data")
        assert config.db.parent == Path(data_dir), name
        if name == "carmetrics":
            assert config.listen == "0.0.0.0"
            port = env(compose["services"]["carmetrics"])["CARMETRICS_EXPORTER__PORT"]
            assert config.port == int(port)


def test_mosquitto_is_optional_and_closed_to_anonymous_clients(compose: dict[str, Any]) -> None:
    """The broker starts only with the ``mqtt`` profile, reads its config, ACL and password file
    from the mounted directory, and admits no anonymous client; its ACL gives the exporter what it
    publishes and lets only Home Assistant write commands."""
    mqtt = compose["services"]["mosquitto"]
    assert mqtt["profiles"] == ["mqtt"]
    assert all(
        mqtt["profiles"] != s.get("profiles")
        for n, s in compose["services"].items()
        if n != "mosquitto"
    )
    target = {s: t for s, t, _ in mounts(mqtt)}["./mosquitto"]
    assert target == "/mosquitto/config"  # where the image reads mosquitto.conf
    conf = dict(
        line.split(None, 1)
        for line in (ROOT / "mosquitto/mosquitto.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert conf["allow_anonymous"] == "false"
    acl = Path(conf["acl_file"])
    assert acl.parent == Path(target) and (ROOT / "mosquitto" / acl.name).exists()
    assert Path(conf["password_file"]).parent == Path(target)
    assert "mosquitto/passwd" in (ROOT / ".gitignore").read_text()
    rules: dict[str, list[str]] = {}
    user = ""
    for line in (ROOT / "mosquitto" / acl.name).read_text().splitlines():
        if line.startswith("user "):
            user = line.split()[1]
        elif line.startswith("topic "):
            rules.setdefault(user, []).append(line)
    assert "topic readwrite carmetrics/#" in rules["carmetrics"]
    writers = [u for u, r in rules.items() if any("carmetrics/+/command" in x for x in r)]
    assert writers == ["homeassistant"]
    port = mqtt["ports"][0]
    assert port == "127.0.0.1:1883:1883"


# --- the fleet profile ----------------------------------------------------------------------------

FLEET = ("postgres", "fleet", "prometheus-fleet")


def test_the_fleet_starts_only_with_its_profile(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        assert (svc.get("profiles") == ["fleet"]) == (name in FLEET), name
    fleet = compose["services"]["fleet"]
    assert fleet["deploy"]["replicas"] == 3
    # the replicas run the image the default stack builds, with PostgreSQL support in it
    assert fleet["image"] == compose["services"]["carmetrics"]["image"]
    assert any(i == "RUN" and "pip wheel" in a and ".[postgres]" in a for i, a in dockerfile())
    assert "ports" not in fleet, "replicas cannot share a host port; Prometheus scrapes them inside"


def test_the_replicas_share_one_database_without_a_password_in_sight(
    compose: dict[str, Any],
) -> None:
    from urllib.parse import urlsplit

    services = compose["services"]
    fleet, pg = services["fleet"], services["postgres"]
    cmd = fleet["command"]
    assert cmd[cmd.index("--shard") + 1] == "auto"
    url = urlsplit(cmd[cmd.index("--db") + 1])
    assert url.scheme == "postgresql" and url.password is None
    assert url.hostname == "postgres" and url.port == 5432
    assert url.username == env(pg)["POSTGRES_USER"] and url.path == "/" + env(pg)["POSTGRES_DB"]
    assert fleet["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    # both read the password from the same compose secret, which lives in an ignored directory
    secrets = compose["secrets"]
    assert env(fleet)["CARMETRICS_EXPORTER__DB_PASSWORD_FILE"] == "/run/secrets/pg_password"
    assert env(pg)["POSTGRES_PASSWORD_FILE"] == "/run/secrets/pg_password"
    assert "pg_password" in fleet["secrets"] and "pg_password" in pg["secrets"]
    assert env(fleet)["CARMETRICS_TOKENS__KEY_FILE"] == "/run/secrets/tokens_key"
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    for name, spec in secrets.items():
        path = Path(spec["file"])
        assert "secrets/" in ignored and "secrets" in path.parts, name
    for name in FLEET:
        for s in services[name].get("secrets", []):
            assert s in secrets, (name, s)


def test_prometheus_finds_every_replica_through_dns(compose: dict[str, Any]) -> None:
    services = compose["services"]
    prom = services["prometheus-fleet"]
    target = {s: t for s, t, _ in mounts(prom)}["./prometheus"]
    flag = next(a for a in prom["command"] if a.startswith("--config.file="))
    path = Path(flag.split("=", 1)[1])
    assert path.parent == Path(target) and (ROOT / "prometheus" / path.name).exists()
    text = (ROOT / "prometheus" / path.name).read_text()
    config = yaml.safe_load(text)
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "carmetrics")
    sd = job["dns_sd_configs"][0]
    assert sd["names"] == ["fleet"] and sd["type"] == "A"
    assert str(sd["port"]) == env(services["fleet"])["CARMETRICS_EXPORTER__PORT"]
    # an example for the long-term store, left for the operator to enable
    assert "remote_write" not in config and "# remote_write:" in text
    example = yaml.safe_load(
        "\n".join(
            line.split("# ", 1)[1]
            for line in text.splitlines()
            if line.startswith("# ") and line[2:4] in ("re", "  ")
        )
    )
    assert example["remote_write"][0]["url"].startswith("https://")
    tool = require_tool("promtool")
    check = subprocess.run(
        [tool, "check", "config", "--syntax-only", str(ROOT / "prometheus" / path.name)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_fleet_config_under_the_compose_environment(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every replica reads fleet/fleet.toml with the service's environment on top (the secret
    files stand in for the compose secrets)."""
    from exporter.config import load
    from exporter.fleet.settings import ShardSection
    from exporter.settings import read_section

    for key in [k for k in os.environ if k.startswith("CARMETRICS_")]:
        monkeypatch.delenv(key)
    for key, value in env(compose["services"]["fleet"]).items():
        if value.startswith("/run/secrets/"):
            stand_in = tmp_path / Path(value).name
            stand_in.write_text("a-stand-in-for-the-compose-secret-0123456789abcdef\n")
            value = str(stand_in)
        monkeypatch.setenv(key, value)
    mount = {t: s for s, t, _ in mounts(compose["services"]["fleet"])}
    cmd = compose["services"]["fleet"]["command"]
    config = load(ROOT / mount[cmd[cmd.index("--config") + 1]])
    assert config.listen == "0.0.0.0" and not config.simulator.enabled
    shard = read_section(ShardSection, config.extra["shard"], "shard")
    assert shard.mode == "auto" and shard.heartbeat is not None
    assert shard.heartbeat < shard.lease / 2


async def test_connect_a_car_leads_the_hosts_browser_to_a_published_port(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """In the container the simulated Smartcar Connect listens on a fixed port on every interface,
    the compose file publishes that port on the host's loopback, and the exporter's "Connect a car"
    redirect names it: the host's browser gets the consent page (not a port that exists only
    inside the container)."""
    import socket

    import aiohttp
    from aiohttp.test_utils import TestServer

    from exporter.clock import ManualClock
    from exporter.config import load
    from exporter.runtime import Runtime
    from exporter.server import make_app

    for key in [k for k in os.environ if k.startswith("CARMETRICS_")]:
        monkeypatch.delenv(key)
    service = compose["services"]["carmetrics"]
    for key, value in env(service).items():
        monkeypatch.setenv(key, value)
    config = load(ROOT / "config.toml")
    sim = config.simulator
    assert sim.connect_listen == "0.0.0.0" and sim.connect_port > 0
    assert f"127.0.0.1:{sim.connect_port}:{sim.connect_port}" in service["ports"]

    def free() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    # the same configuration on this machine: the history in tmp, ports that are free here
    port, connect = free(), free()
    monkeypatch.setenv("CARMETRICS_EXPORTER__DB", str(tmp_path / "h.db"))
    monkeypatch.setenv("CARMETRICS_EXPORTER__PORT", str(port))
    monkeypatch.setenv("CARMETRICS_SIMULATOR__CONNECT_PORT", str(connect))
    config = load(ROOT / "config.toml")
    rt = await Runtime.create(config, ManualClock())
    server = TestServer(make_app(rt), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                if "smartcar-demo" in rt.providers:
                    break
                await asyncio.sleep(0.02)
            url = f"http://127.0.0.1:{port}/connect/smartcar"
            async with http.get(url, allow_redirects=False) as r:
                assert r.status == 302, await r.text()
                location = r.headers["Location"]
            assert location.startswith(f"http://127.0.0.1:{connect}/oauth/authorize?")
            async with http.get(location) as r:
                assert r.status == 200 and "consent" in await r.text()
    finally:
        await server.close()

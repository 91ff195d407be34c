# syntax=docker/dockerfile:1
# carmetrics: the exporter + SQLite (or PostgreSQL) history. Small (python slim, no compilers in the final image),
# non-root, with a HEALTHCHECK on /healthz. Built and run by docker-compose.yml.

# --- build: turn the project and its dependencies into wheels ---------------------------------------
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY analysis ./analysis
# with the "postgres" extra: one image serves the SQLite file and --db postgresql://...
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[postgres]'

# --- run ---------------------------------------------------------------------------------------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CARMETRICS_EXPORTER__LISTEN=0.0.0.0 \
    CARMETRICS_EXPORTER__PORT=8477 \
    CARMETRICS_EXPORTER__DB=/data/carmetrics.db
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels 'carmetrics[postgres]' \
 && groupadd --system --gid 10001 carmetrics \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin carmetrics \
 && mkdir -p /data /etc/carmetrics \
 && chown carmetrics:carmetrics /data
COPY config.toml /etc/carmetrics/config.toml
# /data holds carmetrics.db with its -wal and -shm files: keep it a volume (a directory), never bind a
# single file, so WAL readers (Grafana) find the index files next to the database.
VOLUME ["/data"]
USER 10001:10001
WORKDIR /data
EXPOSE 8477
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CARMETRICS_EXPORTER__PORT', '8477'), timeout=4)"]
ENTRYPOINT ["carmetrics"]
CMD ["run", "--config", "/etc/carmetrics/config.toml"]

# quotaroute proxy image: `docker build -t quotaroute .` (docs/deploy.md).
#
# Two stages: the first installs quotaroute and its runtime dependencies into a
# virtualenv, the second copies only that virtualenv onto a clean slim Python. The
# process runs as an unprivileged user; its state (SQLite ledger and spend log when
# Redis/PostgreSQL are not used, the Responses store) lives in $QUOTAROUTE_HOME, a
# volume. The config is a mounted file ($QUOTAROUTE_CONFIG); vendor API keys, the
# Redis URL and the PostgreSQL DSN come from the environment at run time. Nothing
# secret is copied into the image (.dockerignore keeps .env, *.sqlite and the like out).

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
# Extras a deployment needs beyond the core (which already has Redis, uvloop, httptools,
# aiohttp and prometheus-client): `postgres` for `server.store: postgres`. pip only
# warns about an extra this version does not declare.
ARG EXTRAS=postgres
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/quotaroute
WORKDIR /src
COPY pyproject.toml README.md ./
COPY router ./router
COPY providers ./providers
RUN /opt/quotaroute/bin/pip install ".[${EXTRAS}]" \
 && /opt/quotaroute/bin/python -m compileall -q /opt/quotaroute/lib

FROM python:${PYTHON_VERSION}-slim AS runtime
# libpq: the PostgreSQL client library psycopg loads (a few hundred KB).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 quotaroute \
 && useradd --system --uid 10001 --gid quotaroute --home-dir /data --no-create-home \
            --shell /usr/sbin/nologin quotaroute \
 && mkdir -p /data /etc/quotaroute \
 && chown quotaroute:quotaroute /data
COPY --from=build /opt/quotaroute /opt/quotaroute
ENV PATH=/opt/quotaroute/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    QUOTAROUTE_HOME=/data \
    QUOTAROUTE_CONFIG=/etc/quotaroute/config.yaml
VOLUME ["/data"]
USER 10001:10001
WORKDIR /data
EXPOSE 4000
# Python's standard library only (no curl in a slim image): healthy while /healthz answers 200.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:4000/healthz', timeout=4).status != 200)"]
# SIGTERM: stop accepting, let in-flight requests finish (--graceful-timeout); SIGHUP: reload the config.
STOPSIGNAL SIGTERM
ENTRYPOINT ["quotaroute", "serve"]
CMD ["--host", "0.0.0.0", "--port", "4000"]

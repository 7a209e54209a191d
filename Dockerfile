# The aggregator image: `aggregator run` polls the sources of feeds.toml, publishes per-category feeds and
# serves them with /healthz and /metrics on port 8080. Alone it keeps a SQLite store on the volume
# /srv/aggregator/store; in docker-compose.yml the same image runs each role of a PostgreSQL cluster.
#
#   docker build -t aggregator .
#   docker run -d -p 127.0.0.1:8080:8080 -v aggregator-store:/srv/aggregator/store aggregator

# --- build stage: wheels of the package and its dependencies (compilers and caches stay here) ---
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /tmp/src
COPY pyproject.toml README.md ./
COPY aggregator ./aggregator
RUN pip wheel --wheel-dir /wheels '.[postgresql]'

# --- runtime stage: the wheels installed, no source tree, a non-root user ---
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/aggregator

# Installed from the build stage's wheels only (--no-index): no source tree, build/ or egg-info is
# left in the working directory, where `python -m aggregator` would import it instead.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels 'aggregator[postgresql]'
# the often-edited feeds.toml last, so an edit rebuilds one layer
COPY feeds.toml ./

# Relative paths in feeds.toml resolve against its folder: store/aggregator.db and store/feeds/
# both land on the volume.
RUN useradd --system --uid 10001 --no-create-home --home-dir /srv/aggregator aggregator \
    && mkdir -p store \
    && chown aggregator:aggregator store
USER aggregator
VOLUME ["/srv/aggregator/store"]
EXPOSE 8080

# /healthz answers 503 when the scheduler (or a cluster process's heartbeat) has stopped.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

# SIGTERM lets in-flight polls finish (up to 8 s) before the process exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["aggregator"]
CMD ["run", "--config", "/srv/aggregator/feeds.toml", "--listen", "0.0.0.0:8080"]

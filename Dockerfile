# The aggregator daemon: polls the sources of feeds.toml, publishes per-category Atom feeds and serves
# them with /healthz and /metrics on port 8080. The store (SQLite database and feed files) lives on
# the volume /srv/aggregator/store. See docs/operations.md.
#
#   docker build -t aggregator .
#   docker run -d -p 127.0.0.1:8080:8080 -v aggregator-store:/srv/aggregator/store aggregator
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/aggregator

# Dependencies and code first, the often-edited feeds.toml last, so an edit rebuilds one layer.
# Built from a scratch folder that is then removed: no source tree, build/ or egg-info is left in the
# working directory, where `python -m aggregator` would import it instead of the installed package.
COPY pyproject.toml README.md /tmp/src/
COPY aggregator /tmp/src/aggregator
RUN pip install '/tmp/src[postgresql]' && rm -rf /tmp/src
COPY feeds.toml ./

# Relative paths in feeds.toml resolve against its folder: store/aggregator.db and store/feeds/
# both land on the volume.
RUN useradd --system --uid 10001 --no-create-home --home-dir /srv/aggregator aggregator \
    && mkdir -p store \
    && chown aggregator:aggregator store
USER aggregator
VOLUME ["/srv/aggregator/store"]
EXPOSE 8080

# /healthz answers 503 when the scheduler has stopped running its jobs.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

# SIGTERM lets in-flight polls finish (up to 8 s) before the daemon exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["aggregator"]
CMD ["run", "--config", "/srv/aggregator/feeds.toml", "--listen", "0.0.0.0:8080"]

# syntax=docker/dockerfile:1
# leadpipe's image: `make image` builds it (docker, podman or buildah). The Helm chart runs it with a read-only root
# file system as uid/gid 10001, with emptyDir volumes on /tmp and /data, and passes whole commands as `args`
# (["leadpipe", "worker"], ["leadpipe", "serve"], ...): the image therefore has no ENTRYPOINT, and nothing at run
# time writes outside /tmp and /data (HOME, LEADPIPE_HOME and faust's datadir live under /data).
# tests/integration/infra/test_image_entrypoints.py runs the chart's commands from a virtualenv built the same way.

ARG PYTHON_VERSION=3.11

# ---- builder: compilers and pip caches stay here --------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# A compiler for any dependency that ships no wheel for this platform (the wheels built here are all that leaves),
# and the fonts of the access copies (PDF), whose two files alone the runtime copies.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential fonts-dejavu-core fonts-droid-fallback \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the wheel needs (.dockerignore keeps the rest out); topics.yaml is the target of the symbolic link
# pipeline/kafka/topics.yaml, which the wheel carries as a regular file.
COPY pyproject.toml README.md topics.yaml ./
COPY pipeline ./pipeline
RUN pip wheel --wheel-dir /wheels . \
    && python -m venv /opt/leadpipe \
    && /opt/leadpipe/bin/pip install --no-index --find-links /wheels leadpipe \
    && /opt/leadpipe/bin/pip uninstall -y pip \
    && /opt/leadpipe/bin/leadpipe --help >/dev/null

# ---- runtime: the virtualenv, no compiler, no pip cache, no wheels -------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="leadpipe" \
      org.opencontainers.image.description="Event-driven pipeline that takes in leads and contacts and keeps them lawful." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="LicenseRef-Proprietary"
RUN groupadd --system --gid 10001 leadpipe \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin leadpipe \
    && mkdir -p /data \
    && chown 10001:10001 /data \
    && rm -rf /root/.cache
COPY --from=builder /opt/leadpipe /opt/leadpipe
# A person's data in Cyrillic, Greek, Arabic (DejaVu Sans) or Chinese, Japanese and Korean (Droid Sans Fallback) is
# written in its letters in their access copy, not as \uXXXX escapes (pipeline/rights/export.py looks here).
COPY --from=builder /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
COPY --from=builder /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf \
     /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf
ENV PATH="/opt/leadpipe/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/data \
    LEADPIPE_HOME=/data/leadpipe
USER 10001:10001
WORKDIR /data
# Writable under a read-only root file system (the chart mounts emptyDirs here; `docker run --read-only` gets volumes).
VOLUME ["/data", "/tmp"]
# leadpipe serve (LEADPIPE_INGEST_PORT) and the worker's web server (LEADPIPE_WORKER_WEB_PORT: probes, /metrics).
EXPOSE 8080 6066
CMD ["leadpipe", "--help"]

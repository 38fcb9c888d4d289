# syntax=docker/dockerfile:1
# One image per service, from the workspace's lock file:
#   docker build --target poller .   (likewise sender, health, cli; compose.yaml builds them)
# Each image holds only its own member's locked dependencies: the sender's
# brings neonize (and its Go shared library), the poller's and health's do not.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

# ---- shared runtime base: non-root user, writable /data ---------------------
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH="/app/.venv/bin:${PATH}"
RUN groupadd --system --gid 10001 wasched \
 && useradd --system --uid 10001 --gid wasched --home-dir /data --no-create-home wasched \
 && mkdir -p /data \
 && chown wasched:wasched /data
WORKDIR /data

# ---- build: each service's locked dependencies (cached layer), then its code -------
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY libs/cli/pyproject.toml libs/cli/
COPY services/poller/pyproject.toml services/poller/
COPY services/sender/pyproject.toml services/sender/
COPY services/health/pyproject.toml services/health/

FROM build AS build-poller
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --no-install-workspace --package wasched-poller
COPY libs/common/ libs/common/
COPY services/poller/ services/poller/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --package wasched-poller

FROM build AS build-sender
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --no-install-workspace --package wasched-sender
COPY libs/common/ libs/common/
COPY services/sender/ services/sender/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --package wasched-sender

FROM build AS build-health
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --no-install-workspace --package wasched-health
COPY libs/common/ libs/common/
COPY services/health/ services/health/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --package wasched-health

FROM build AS build-cli
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --no-install-workspace --package wasched-cli
COPY libs/common/ libs/common/
COPY libs/cli/ libs/cli/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --package wasched-cli

# ---- poller ------------------------------------------------------------------
FROM base AS poller
COPY --from=build-poller /app/.venv /app/.venv
USER wasched
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
    CMD ["python", "-m", "wasched.common.probe", "heartbeat", "poller"]
CMD ["python", "-m", "wasched.poller"]

# ---- sender (neonize: libmagic at run time; ffmpeg/ffprobe for video, audio, voice notes) ----
FROM base AS sender
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmagic1 ffmpeg \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build-sender /app/.venv /app/.venv
ENV WHATSAPP_SESSION=/data/session.sqlite3 \
    DRYRUN_OUTBOX=/data/outbox.jsonl \
    NEONIZE_BOT_TAG=off
USER wasched
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=15s --start-period=60s --retries=3 \
    CMD ["python", "-m", "wasched.common.probe", "heartbeat", "sender"]
CMD ["python", "-m", "wasched.sender"]

# ---- health --------------------------------------------------------------------
FROM base AS health
COPY --from=build-health /app/.venv /app/.venv
ENV HEALTH_PORT=3002 \
    HEALTH_HOST=0.0.0.0
USER wasched
EXPOSE 3002
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "wasched.common.probe", "http", "http://127.0.0.1:3002/ping"]
CMD ["python", "-m", "wasched.health"]

# ---- cli: the `wasched` command (`docker compose run --rm cli …`; `wasched init`) ----
FROM base AS cli
COPY --from=build-cli /app/.venv /app/.venv
USER wasched
HEALTHCHECK NONE
ENTRYPOINT ["wasched"]
CMD ["--help"]

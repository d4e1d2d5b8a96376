# syntax=docker/dockerfile:1
#
# The llm-gateway image: the gateway alone, in front of vLLM / Ollama / OpenAI-compatible workers.
# It includes the `otel` extra (OpenTelemetry tracing, off until OTEL_EXPORTER_OTLP_ENDPOINT is set).
# It does NOT include the `local` extra (llama.cpp and the SmolLM2 wheel): production workers run in
# their own containers, and the image is a few dozen MB instead of a compiler toolchain.
#
#   docker build -t llm-gateway:0.1.0 .
#   docker run --rm -p 3100:3100 -e LLM_API_KEY=... -v "$PWD/deploy/catalogs:/app/catalogs:ro" llm-gateway:0.1.0
#
# A key is REQUIRED: the image listens on 0.0.0.0 (GATEWAY_HOST), and the gateway refuses to listen
# beyond loopback without one. Pass LLM_API_KEY (and/or GATEWAY_ADMIN_KEY, GATEWAY_KEYS_FILE) at run
# time (compose `environment`, a Kubernetes Secret); no key or other secret is ever built into a layer.
#
# The catalog: deploy/catalogs/*.yaml are baked in at /app/catalogs (dev.yaml is the default
# GATEWAY_CONFIG); mount your own over /app/catalogs, or anywhere with GATEWAY_CONFIG pointing at it.
# Edits to a mounted catalog are picked up without a restart.

# ---- stage 1: build the project's wheel and every dependency's wheel ------------------------------
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1
WORKDIR /src

# Only what the wheel is built from (.dockerignore allows nothing else into the context).
COPY pyproject.toml README.md ./
COPY gateway/ gateway/
COPY routing/ routing/
COPY simulator/ simulator/

RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --wheel-dir /wheels '.[otel]'

# ---- stage 2: the runtime, a venv installed offline from those wheels ----------------------------
FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="llm-gateway" \
      org.opencontainers.image.description="OpenAI-compatible LLM gateway and router (vLLM, Ollama, OpenAI)" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed, numeric, unprivileged user (Kubernetes' runAsNonRoot can check a numeric UID).
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin gateway

# The wheels are bind-mounted from the build stage, so they never become a layer of this image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels 'llm-gateway[otel]'

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=3100 \
    GATEWAY_CONFIG=/app/catalogs/dev.yaml \
    GATEWAY_START_LOCAL_WORKERS=false

WORKDIR /app
COPY deploy/catalogs/ /app/catalogs/

USER 10001:10001
EXPOSE 3100

# SIGTERM: readiness fails and new requests get 503 at once, what is under way gets GATEWAY_DRAIN_SECONDS
# (5), then open streams get an error event and the process exits within ~2 s. Give it more than that
# before a SIGKILL: compose `stop_grace_period: 45s`, Kubernetes `terminationGracePeriodSeconds: 45`.
STOPSIGNAL SIGTERM

# Liveness only (/livez: the process answers). Readiness (/readyz) depends on the workers and Redis,
# which is the orchestrator's business, not a reason to restart this container.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GATEWAY_PORT', '3100') + '/livez', timeout=4)"]

CMD ["llm-gateway", "serve"]

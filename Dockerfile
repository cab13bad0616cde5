# syntax=docker/dockerfile:1
# One image for the three deployables (gateway, consumer, aggregator); see docker/entrypoint.sh.

# ---- build: resolve and install the project into a self-contained virtualenv ----------------------
FROM python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY devops_core ./devops_core
COPY producer ./producer
COPY consumer ./consumer
COPY aggregator ./aggregator
COPY devstack ./devstack
# kclpy-ext ships the KCL jars inside the wheel; fail the build here rather than at task start.
RUN pip install . \
    && python -c "import pathlib, amazon_kclpy; jars = pathlib.Path(amazon_kclpy.__file__).parent / 'jars'; assert any(jars.glob('amazon-kinesis-client-multilang-*.jar')), jars"

# ---- runtime: slim Python + a headless JRE for the KCL MultiLangDaemon -----------------------------
FROM python:3.11-slim-bookworm AS runtime

# (slim images drop /usr/share/man, where the JRE's postinst registers its man pages)
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv
COPY docker/entrypoint.sh /usr/local/bin/devops-metrics

ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000 \
    GATEWAY_WORKERS=1

WORKDIR /app
USER 10001:10001

EXPOSE 8000
ENTRYPOINT ["devops-metrics"]
CMD ["gateway"]

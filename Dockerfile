# syntax=docker/dockerfile:1
# One image for the three deployables (gateway, consumer, aggregator); see docker/entrypoint.sh.
# Debian 12 throughout: its python3 is 3.11, and `make image-test` builds this file on a base made by
# debootstrap from the same distribution (BASE_IMAGE=localhost/devops-metrics-debian-base:bookworm).
ARG BASE_IMAGE=debian:bookworm-slim

# ---- build: the locked Python dependencies in a virtualenv, and a minimal Java runtime (jlink) --------
FROM ${BASE_IMAGE} AS build

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# (minimal Debian images drop /usr/share/man, where the JDK's postinst registers its man pages;
# binutils: jlink --strip-debug runs objcopy)
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates ca-certificates-java openjdk-17-jdk-headless binutils \
    && rm -rf /var/lib/apt/lists/*

# The modules the KCL 3.x jars use (jdeps --print-module-deps over kclpy-ext's jars), plus TLS's
# elliptic curves (jdk.crypto.ec) and the CPU/memory MXBeans KCL 3 reads for lease balancing.
ARG JAVA_MODULES=java.base,java.compiler,java.desktop,java.logging,java.management,java.naming,java.security.jgss,java.sql,java.xml,jdk.unsupported,jdk.crypto.ec,jdk.management
RUN jlink --add-modules "${JAVA_MODULES}" --strip-debug --no-man-pages --no-header-files \
        --compress=2 --output /opt/jre \
    && rm /opt/jre/lib/security/cacerts \
    && cp /etc/ssl/certs/java/cacerts /opt/jre/lib/security/cacerts

RUN python3 -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"

WORKDIR /src
# Exact versions with hashes (requirements/runtime.txt, `make lock`): no resolution at build time.
COPY requirements/runtime.txt ./requirements/runtime.txt
# A build behind a TLS-intercepting proxy passes its CA bundle as the build secret pip_cert
# (`make image-test` does, from PIP_CERT); without it pip uses its own CA bundle.
RUN --mount=type=secret,id=pip_cert \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && pip install --require-hashes --no-deps -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY devops_core ./devops_core
COPY producer ./producer
COPY consumer ./consumer
COPY aggregator ./aggregator
COPY devstack ./devstack
# kclpy-ext ships the KCL jars inside the wheel; fail the build here rather than at task start.
RUN --mount=type=secret,id=pip_cert \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && pip install --no-deps . \
    && pip uninstall -y pip \
    && find /opt/venv -name __pycache__ -prune -exec rm -rf {} + \
    && /opt/venv/bin/python -c "import pathlib, amazon_kclpy; jars = pathlib.Path(amazon_kclpy.__file__).parent / 'jars'; assert any(jars.glob('amazon-kinesis-client-multilang-*.jar')), jars"

# ---- runtime: Debian's python3, the jlink'ed JRE, the virtualenv; user 10001 ------------------------
FROM ${BASE_IMAGE} AS runtime

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 ca-certificates \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old \
        /usr/share/doc/* /usr/share/man/* /usr/share/locale/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /app && chown app:app /app

COPY --from=build /opt/jre /opt/jre
COPY --from=build /opt/venv /opt/venv
COPY docker/entrypoint.sh /usr/local/bin/devops-metrics
COPY docker/healthcheck.py /usr/local/bin/devops-metrics-healthcheck

ENV PATH="/opt/venv/bin:/opt/jre/bin:$PATH" \
    JAVA_HOME=/opt/jre \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000 \
    GATEWAY_WORKERS=1

WORKDIR /app
USER 10001:10001

EXPOSE 8000
# The gateway answers /healthz; the KCL commands are healthy while their MultiLangDaemon runs.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/bin/devops-metrics-healthcheck"]
ENTRYPOINT ["devops-metrics"]
CMD ["gateway"]

# Two entry points: `make run` (the whole pipeline on the embedded emulator) and `make test`.
# Both create and fill .venv themselves, so a fresh clone needs nothing installed by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
PIP    := $(PY) -m pip --disable-pip-version-check

.PHONY: run demo inspect test lint audit format bench clean help system-tools lock image-test image-tools

help:
	@echo "make run    - start emulator, gateway, consumer and aggregator on 127.0.0.1 (Ctrl-C stops all;"
	@echo "              data is kept in .devstack/; make run ARGS=--clean wipes it; ARGS=--help: options)"
	@echo "make demo   - load 35 days of realistic history into the running stack (ARGS=--help: options)"
	@echo "make inspect - tables of the stream, stored rows, metrics and dead letters of the running stack"
	@echo "make test   - lint, audit dependencies and run the whole test suite"
	@echo "make audit  - pip-audit of the installed .venv (known vulnerabilities, via PyPI)"
	@echo "make bench  - run the benchmarks under bench/ and print their numbers"
	@echo "make format - format the code with ruff"
	@echo "make lock   - re-resolve requirements/*.txt (exact versions + hashes) from pyproject.toml"
	@echo "make image-test - build the container image with buildah and run its entry points (after make test)"

# Installs exactly the locked versions (hash-checked), then the project itself without resolving again.
# dev.txt holds every version of run.txt, so a test install also serves make run.
$(STAMP): pyproject.toml requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet --require-hashes -r requirements/dev.txt
	$(PIP) install --quiet --no-deps -e .
	touch $(STAMP) $(RUN_STAMP)

# make run / demo / inspect install only requirements/run.txt: the runtime plus the emulator (no test
# tools, no CDK, no browser driver). A second call finds the stamp and installs nothing.
$(RUN_STAMP): pyproject.toml requirements/run.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --require-hashes -r requirements/run.txt
	$(PIP) install --quiet --no-deps -e .
	touch $(RUN_STAMP)

# requirements/dev.txt (make test), requirements/run.txt (make run) and requirements/runtime.txt (the
# image); the last two are subsets with the same versions as dev.txt, universal for Python 3.11, with
# hashes. Run after changing dependencies in pyproject.
lock: $(STAMP)
	$(PY) -m pip install --quiet "uv>=0.5"
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
	  --generate-hashes --no-header -q -o requirements/dev.txt
	$(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
	  --generate-hashes --no-header -q -c requirements/dev.txt -o requirements/runtime.txt
	$(VENV)/bin/uv pip compile pyproject.toml --extra run --universal --python-version 3.11 \
	  --generate-hashes --no-header -q -c requirements/dev.txt -o requirements/run.txt

# Local state (emulator snapshot, token, KCL checkpoints) lives in .devstack/ (git-ignored).
run: $(RUN_STAMP)
	$(PY) -m devstack $(ARGS)

demo: $(RUN_STAMP)
	$(PY) -m devstack.demo $(ARGS)

inspect: $(RUN_STAMP)
	$(PY) -m devstack.inspect $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# pip-audit asks PyPI's JSON API about each installed distribution; packages it cannot ask about
# are skipped and counted on the summary line. Any finding fails the build; accepted findings are
# listed with their reason in tools/audit_dependencies.py. AUDIT_FLAGS=--strict also fails on skips.
AUDIT_FLAGS ?=
audit: $(STAMP)
	$(PY) tools/audit_dependencies.py $(AUDIT_FLAGS)

# The pinned AWS CDK CLI (cdk/package.json + package-lock.json) for tests/cdk/test_cdk_cli.py.
CDK_NODE_MODULES := cdk/node_modules/.package-lock.json

$(CDK_NODE_MODULES): cdk/package.json cdk/package-lock.json
	npm ci --prefix cdk --no-audit --no-fund --prefer-offline --loglevel=error
	touch $@

# GitHub's own webhook example payloads (@octokit/webhooks-examples, pinned) for tests/webhooks.
GITHUB_EXAMPLES := tests/webhooks/github_examples/node_modules/.package-lock.json

$(GITHUB_EXAMPLES): tests/webhooks/github_examples/package.json tests/webhooks/github_examples/package-lock.json
	npm ci --prefix tests/webhooks/github_examples --no-audit --no-fund --prefer-offline --loglevel=error
	touch $@

# System tools the tests use for real: Java (the KCL MultiLangDaemon), a compose parser and headless
# Chromium (tests/dashboard, driven by Playwright at /usr/bin/chromium).
# On Debian they are installed when missing; elsewhere install them yourself (see DEVELOPERS.md).
system-tools:
	@command -v java >/dev/null 2>&1 && command -v docker-compose >/dev/null 2>&1 \
	  && command -v chromium >/dev/null 2>&1 || { \
	  command -v apt-get >/dev/null 2>&1 || { echo "install Java 17, docker-compose and chromium" >&2; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    openjdk-17-jre-headless docker-compose chromium >/dev/null; }

test: lint audit system-tools $(CDK_NODE_MODULES) $(GITHUB_EXAMPLES)
	$(PY) -m pytest $(PYTEST_ARGS)

# The container image, built and run without a Docker engine: buildah (chroot isolation) builds the
# Dockerfile on a Debian base made by debootstrap from apt's own mirror (docker/debian-base.sh, cached
# under ~/.cache/devops-metrics), then tests/image runs each entry point inside it against the
# embedded emulator. Installs buildah and debootstrap with apt when missing.
image-tools:
	@command -v buildah >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1 || { \
	  command -v apt-get >/dev/null 2>&1 || { echo "install buildah and debootstrap" >&2; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah debootstrap >/dev/null; }

image-test: $(STAMP) system-tools image-tools
	$(PY) -m pytest -m image tests/image $(PYTEST_ARGS)

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	@for b in bench/*/run.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache cdk/cdk.out cdk/node_modules

# Entry points a newcomer types; each installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo run test lint deps-system deps-node deps-browser deps-influxdb2 deps-linkerd bench clean

$(BIN)/meshalert: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The demo: sidecar + embedded store + engine + simulated Linkerd traffic with incidents.
demo: $(BIN)/meshalert
	$(BIN)/meshalert demo

# The main job on the embedded default (sidecar on 127.0.0.1:8125, sqlite:///./meshalert.db).
run: $(BIN)/meshalert
	$(BIN)/meshalert run

# Debian's influxd 1.x for the real-server tests.
deps-system:
	@command -v influxd >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq influxdb >/dev/null; }
	@# the Debian package starts a system influxd on 8086; tests start their own
	-@$(SUDO) systemctl stop influxdb >/dev/null 2>&1 || true

# Debian's chromium for the status page's browser test (headless, no network needed).
deps-browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# Node tools: the Flux language server (query validation) and osls (serverless packaging).
deps-node:
	npm ci --prefix tools --no-audit --no-fund --silent
	npm ci --prefix deploy --no-audit --no-fund --silent

# Real Linkerd 1.7.5 for the tests, built once into ~/.cache/meshalert/linkerd-1.7.5 from a
# fetched snapshot of linkerd/linkerd (no registry has it) with Java 17 and Maven; about 17
# minutes cold here, a no-op when cached; says why and exits 0 without the snapshot.
# See tools/linkerd/README.md.
deps-linkerd:
	tools/linkerd/build.sh

# InfluxDB 2.7 (a real Flux engine) built from its Go module with Go and cargo, once; cached
# in ~/.cache/meshalert/influxd-<version>/ (MESHALERT_CACHE moves it), then a no-op.
deps-influxdb2:
	@bash tools/build_influxd2.sh >/dev/null

test: $(BIN)/meshalert deps-system deps-node deps-browser deps-influxdb2 deps-linkerd
	MESHALERT_REQUIRE_NODE=1 MESHALERT_REQUIRE_BROWSER=1 MESHALERT_REQUIRE_INFLUXDB2=1 $(BIN)/pytest

lint: $(BIN)/meshalert
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(BIN)/meshalert deps-system deps-node deps-influxdb2 deps-linkerd
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) tools/node_modules deploy/node_modules .pytest_cache .mypy_cache

# Mutation testing of the pure core (not part of `make test`: many CPU minutes). Results are
# cached in ~/.cache/meshalert/mutation/<module>; see benchmarks/mutation.py.
.PHONY: mutation
mutation: $(BIN)/meshalert
	$(BIN)/python -m benchmarks.mutation $(MODULES)

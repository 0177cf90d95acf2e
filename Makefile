# On a fresh machine every target sets itself up: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench lint clean browser postgres

$(STAMP): pyproject.toml setup.py src/abpool/segments/_kernel.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/abpool demo

# The report tests open the HTML in real headless Chromium; install it once when missing (Debian).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# The warehouse tests start a real PostgreSQL server; install it once when missing (Debian).
postgres:
	command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq postgresql)

test: $(STAMP) browser postgres
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=15

test-fast: $(STAMP) browser postgres
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow"

bench: $(STAMP)
	$(BIN)/python bench/bench_variants.py
	$(BIN)/python bench/bench_segments.py
	$(BIN)/python bench/bench_kernel.py
	$(BIN)/python bench/bench_correlated.py
	$(BIN)/python bench/bench_data.py
	$(BIN)/python bench/bench_batch.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info

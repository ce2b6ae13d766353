# Two commands for a new user: `make run` (the demo) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# EXTRAS: more optional extras for the tests; .ci/run adds "spark" where Java is present so the Spark linking path is tested
EXTRAS ?=
comma := ,
TEST_EXTRAS := test$(if $(EXTRAS),$(comma)$(EXTRAS))

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[$(TEST_EXTRAS)]"
	@# video hashing (vpdq) builds only against FFmpeg's development files; without them its tests skip with a reason
	if pkg-config --exists libavcodec libavformat libswscale 2>/dev/null; then $(BIN)/pip install --quiet -e ".[$(TEST_EXTRAS),video]"; \
	else echo "note: FFmpeg development packages not found; skipping the optional tiptriage[video] extra" >&2; fi
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/tiptriage demo

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src

# TEST_WORKERS: pytest-xdist processes (2: the suite waits on subprocesses, PostgreSQL and Chromium about half the time,
# so two share 2 cores well; each test has its own databases, roles and folders). 0 runs the tests in this process.
TEST_WORKERS ?= 2

test: lint
	$(BIN)/pytest -q -n $(TEST_WORKERS)

bench: $(VENV)/.test-installed
	$(BIN)/pip install --quiet -e ".[test,bench]"
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) demo tiptriage.db tiptriage.db-wal tiptriage.db-shm

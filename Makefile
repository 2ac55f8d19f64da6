# The two set-up commands of the README: `make demo` and `make test`. Each builds its own venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS ?= dev

.PHONY: install demo test test-fast lint bench clean

# The suite mostly waits (on servers, workers, schedules): four pytest-xdist workers overlap those
# waits on two cores; each worker takes whole files (they share module fixtures and servers).
WORKERS ?= 4
XDIST   := -n $(WORKERS) --dist loadfile

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

install: $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".$(if $(EXTRAS),[$(EXTRAS)])"

# The demo needs the package alone; the tests and benchmarks need the dev tools and every extra.
demo: EXTRAS =

demo: install
	$(BIN)/autotalk-prefect demo $(ARGS)

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install lint
	$(BIN)/python -m pytest -q $(XDIST) $(PYTEST_ARGS)

# The inner loop: everything but the files that wait on real processes, schedules or a browser
# (tests/conftest.py SLOW_FILES); no install, no lint.
test-fast:
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow" $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

# The two set-up commands of the README: `make demo` and `make test`. Each builds its own venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS ?= dev

.PHONY: install demo test lint bench clean

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
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

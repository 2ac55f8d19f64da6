# The two set-up commands of the README: `make demo` and `make test`. Each builds its own venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS ?= dev

.PHONY: install demo test test-fast test-floor lint bench clean

# The suite mostly waits (on servers, workers, schedules): four pytest-xdist workers overlap those
# waits on two cores; each worker takes whole files (they share module fixtures and servers).
WORKERS ?= 4
XDIST   := -n $(WORKERS) --dist loadfile

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

# A dev install compiles every module to bytecode up front (as pip does; uv does not by default):
# the suite starts ~200 Python processes (Prefect servers, workers, CLIs, flow runs), and with
# PYTHONDONTWRITEBYTECODE set, as on CI's machines, each one would compile Prefect from source
# again: `import prefect` costs 3.5 s of CPU that way, 1.7 s from bytecode. The demo's own
# install skips it (compiling costs ~20 s of CPU, more than the demo's few processes save).
COMPILE = $(if $(filter dev,$(EXTRAS)),--compile-bytecode)

install: $(BIN)/uv
	$(BIN)/uv pip install --quiet $(COMPILE) --python $(BIN)/python -e ".$(if $(EXTRAS),[$(EXTRAS)])"
	$(if $(COMPILE),@$(BIN)/python -m compileall -q autotalk_prefect tests flows bench >/dev/null)

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

# The focused suite (tests marked `floor`) on the lowest Prefect pyproject.toml allows, in a venv
# built from nothing each time. Prefect 3.4-3.6's own server breaks on fastapi 0.137+ (3.7+ needs
# 0.139+, so pyproject cannot say it): pinned here, as docs/getting-started.md tells users.
FLOOR_VENV    := .venv-floor
FLOOR_PREFECT ?= $(shell sed -n 's/^ *"prefect>=\([0-9.]*\),.*/\1/p' pyproject.toml)
FLOOR_PINS    ?= "prefect==$(FLOOR_PREFECT).*" "fastapi<0.137"
FLOOR_TESTS    = $(shell grep -rl --include='*.py' 'pytest.mark.floor' tests | sort)

test-floor:
	rm -rf $(FLOOR_VENV)
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv
	$(FLOOR_VENV)/bin/uv pip install --quiet --compile-bytecode --python $(FLOOR_VENV)/bin/python $(FLOOR_PINS) -e ".[test,dlt]"
	@$(FLOOR_VENV)/bin/python -c "import prefect, fastapi; print(f'floor: Prefect {prefect.__version__}, fastapi {fastapi.__version__}')"
	$(FLOOR_VENV)/bin/python -m pytest -q -m floor $(PYTEST_ARGS) $(FLOOR_TESTS)

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(FLOOR_VENV) .pytest_cache .ruff_cache .mypy_cache

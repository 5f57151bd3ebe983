# The two commands of the README: `make demo` and `make test`. Both start from a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test install sandbox-deps lint clean benchmark

install: $(VENV)/.installed sandbox-deps

$(VENV)/.installed: pyproject.toml
	@echo "==> creating $(VENV) and installing dlgrade with pinned dependencies (first run: a few minutes)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --progress-bar off -e '.[dev]'
	touch $@

# bubblewrap is the sandbox; Debian's package, installed once (as root, or with sudo).
sandbox-deps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  echo "==> installing bubblewrap (the sandbox)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq bubblewrap; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq bubblewrap; fi; }

demo: install
	$(BIN)/python -m autograder.demo

test: install
	$(BIN)/ruff check autograder tests benchmarks solutions/*/graders
	$(BIN)/python -m pytest -v --durations=15

lint: install
	$(BIN)/ruff check autograder tests benchmarks solutions/*/graders

benchmark: install
	$(BIN)/python benchmarks/bench_grade.py

clean:
	rm -rf submitted autograded feedback gradebook.db dlgrade-grades.csv

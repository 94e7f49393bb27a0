# `make test` and `make demo` work from a bare clone: the virtual environment is created on first use.
# `make demo` installs only what the demo needs (requirements.txt); `make test` adds the test tools
# (requirements-dev.txt, shellcheck) and first checks what it cannot install itself: cmake and g++ for the
# C++ inference harness, and CPython 3.7 plus PyPI access for MindSpore Lite (scripts/setup_mindspore_lite.sh).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.installed-runtime

.PHONY: test test-unit test-system test-prerequisites lint demo clean-venv

$(RUNTIME_STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	command -v shellcheck >/dev/null || (apt-get update -qq && apt-get install -y -qq shellcheck)
	touch $(STAMP)

test-prerequisites:
	@command -v cmake >/dev/null || { echo "error: make test needs cmake to build the C++ inference harness (Debian/Ubuntu: apt-get install cmake)" >&2; exit 2; }
	@command -v g++ >/dev/null || { echo "error: make test needs g++ (C++17) to build the C++ inference harness (Debian/Ubuntu: apt-get install g++)" >&2; exit 2; }
	@bash scripts/setup_mindspore_lite.sh >/dev/null

test: $(STAMP) test-prerequisites
	$(PY) -m ruff check .
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -q tests

# The fast tier: tests/unit mirrors src/, one test file per module.
test-unit: $(STAMP)
	$(PY) -m ruff check .
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -q tests/unit

# Whole runs: entry points, interruptions, distributed launches, launch scripts, the C++ harness, the demo,
# every architecture.
test-system: $(STAMP) test-prerequisites
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -q tests/system

lint: $(STAMP)
	$(PY) -m ruff check .

clean-venv:
	rm -rf $(VENV)

# DEMO_ARGS: flags for the demo, e.g. make demo DEMO_ARGS="--epochs 2" for a shorter run.
DEMO_ARGS ?=
demo: $(RUNTIME_STAMP)
	$(PY) -m src.tools.demo $(DEMO_ARGS)

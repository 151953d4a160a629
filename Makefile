# ferkit: `make run` (the web app and REST API with the shipped model, on http://$(HOST):$(PORT)/) and `make test`.
# Both set up .venv first; `make setup` is idempotent (a stamp file skips work already done).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ferkit-setup
HOST ?= 127.0.0.1
PORT ?= 8000
LOG_LEVEL ?= warning

.PHONY: setup run test clean-venv

setup: $(STAMP)

# Recipe lines are silent (@): `make run` shows ferkit's own line (the URL, Ctrl-C stops) and what the server logs
# at LOG_LEVEL (warning: problems only; LOG_LEVEL=info adds each request). torch is installed first, pinned: its
# CPU wheel (2.13.0) is already on this machine's disk.
$(STAMP): pyproject.toml
	@echo "ferkit: setting up $(VENV) (first run, or pyproject.toml changed)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

# A busy port ends in one line from ferkit serve suggesting a free one (FERKIT_SERVE_RETRY words it for make).
run: setup
	@FERKIT_SERVE_RETRY='make run PORT={port}' $(VENV)/bin/ferkit serve --host $(HOST) --port $(PORT) \
		--model default --log-level $(LOG_LEVEL)

test: setup
	$(PY) -m pytest

clean-venv:
	rm -rf $(VENV)

# ferkit: `make run` (the web app and REST API with the shipped model, on http://$(HOST):$(PORT)/) and `make test`.
# Both set up .venv first; `make setup` is idempotent (a stamp file skips work already done).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ferkit-setup
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run test clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: the CPU wheel (2.13.0) is already on this machine's disk.
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

run: setup
	@echo "ferkit web app: open http://$(HOST):$(PORT)/ in a browser (REST API docs: http://$(HOST):$(PORT)/docs; Ctrl-C stops)"
	$(VENV)/bin/ferkit serve --host $(HOST) --port $(PORT) --model default

test: setup
	$(PY) -m pytest

clean-venv:
	rm -rf $(VENV)

# ferkit: `make run` (recognise the bundled sample face with the shipped model) and `make test`.
# Both set up .venv first; `make setup` is idempotent (a stamp file skips work already done).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ferkit-setup

.PHONY: setup run test clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: the CPU wheel (2.13.0) is already on this machine's disk.
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

run: setup
	$(VENV)/bin/ferkit predict src/ferkit/samples/astronaut_face.png --model default

test: setup
	$(PY) -m pytest

clean-venv:
	rm -rf $(VENV)

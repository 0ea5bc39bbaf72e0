# `make demo` and `make test` each build .venv from setup.cfg on a fresh machine (Python 3.11).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m tools.model_stats --paper
	$(BIN)/python -m tools.run_clip --config=configs/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q --timeout=900

clean:
	rm -rf $(VENV) demo_out *.egg-info

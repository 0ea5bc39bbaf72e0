# `make demo` and `make test` each build .venv from setup.cfg on a fresh machine (Python 3.11).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The demo's records: synthetic scenes with exact flow (configs/demo.py reads them).
DEMO_SCENES := --source synthetic --flow exact --height 64 --width 96 --max-speed 1.0 --quiet

demo: $(STAMP)
	$(BIN)/python -m tools.model_stats --paper
	$(BIN)/python -m tools.export_tfrecords $(DEMO_SCENES) --out demo_out/records/train \
		--num-sequences 8 --frames-per-sequence 120
	$(BIN)/python -m tools.export_tfrecords $(DEMO_SCENES) --out demo_out/records/eval \
		--num-sequences 3 --num-shards 3 --frames-per-sequence 150 --seed 1000
	$(BIN)/python -m mmp_jax.main --config=configs/demo.py --workdir=demo_out
	@echo "Deblur your own clip with the model just trained:" \
		"$(BIN)/python -m tools.deblur --checkpoint demo_out/model --input YOUR_CLIP.mp4 --output deblurred.mp4"

# ruff (pyproject.toml's [tool.ruff]) first: CI runs this command
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q --timeout=900 --durations=25 -n 2

# The quick tier (a few minutes on 2 CPU cores): every test not marked `slow`.
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q --timeout=900 -n 2 -m "not slow"

clean:
	rm -rf $(VENV) demo_out *.egg-info

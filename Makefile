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

# The demo's records: synthetic scenes with exact flow (configs/demo.py reads them): training
# scenes, held-back scenes drawn as they are, and scenes of photos no training scene shows
# (--photos held_out); the model is scored on both, the two scores recalled last.
DEMO_SCENES := --source synthetic --flow exact --height 64 --width 96 --max-speed 1.0 --quiet
DEMO_EVAL := --num-sequences 8 --num-shards 8 --frames-per-sequence 150
DEMO_SCORES := import json; from mmp_jax.evaluate import MMPRNNEvaluator as E; \
	[print(f'{name}:', E.summary(json.load(open(f'demo_out/{folder}eval/metrics.json'))['mmprnn'])) \
	 for name, folder in (('held-back scenes drawn as the training scenes', ''), ('scenes of photos never seen', 'heldout/'))]

demo: $(STAMP)
	$(BIN)/python -m tools.model_stats --paper
	$(BIN)/python -m tools.export_tfrecords $(DEMO_SCENES) --out demo_out/records/train \
		--num-sequences 64 --frames-per-sequence 120
	$(BIN)/python -m tools.export_tfrecords $(DEMO_SCENES) $(DEMO_EVAL) --out demo_out/records/eval --seed 1000
	$(BIN)/python -m tools.export_tfrecords $(DEMO_SCENES) $(DEMO_EVAL) --out demo_out/records/heldout \
		--photos held_out --seed 2000
	$(BIN)/python -m mmp_jax.main --config=configs/demo.py --workdir=demo_out
	$(BIN)/python -m mmp_jax.main --config=configs/demo.py --workdir=demo_out/heldout --mode=eval \
		--config.eval.checkpoint=demo_out/model --config.data.eval_records=demo_out/records/heldout
	@$(BIN)/python -c "$(DEMO_SCORES)"
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

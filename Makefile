# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
# Each checks the system libraries, creates .venv when missing, installs dexsim, then runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch + torchvision: the pair pip resolves from this project's machines' local wheels; any
# matching pair works (set TORCH_SPEC to override, e.g. a CPU-only build).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
EXTRAS ?= dev,metrics,aria,play
STAMP := $(VENV)/.dexsim-installed
OUT ?= outputs



.PHONY: demo test test-fast lint bench train-default train-forecaster sysdeps install clean

demo: sysdeps $(STAMP)
	$(VENV)/bin/dexsim demo --out $(OUT)/demo

test: sysdeps $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

# The same without the tests marked slow (each over ~10 s on 2 CPU cores): the quick loop while editing.
test-fast: sysdeps $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/lint-imports --no-cache --no-logo

GARDEN ?= ../shared/data/gsplat_garden/test_garden.npz
bench: sysdeps $(STAMP)
	@if [ -f $(GARDEN) ]; then $(VENV)/bin/dexsim bench render --points $(GARDEN) --width 256 --height 256 \
		--json $(OUT)/bench_render.json; else echo "no $(GARDEN): set GARDEN=path/to/test_garden.npz"; fi
	$(VENV)/bin/dexsim bench prompts --width 720 --height 480 --json $(OUT)/bench_prompts.json
	rm -rf $(OUT)/bench_datagen
	$(VENV)/bin/dexsim datagen --out $(OUT)/bench_datagen --clips 30 --workers 2 --json $(OUT)/bench_datagen.json
	$(VENV)/bin/dexsim bench worldmodel --config default --json $(OUT)/bench_worldmodel.json
	$(VENV)/bin/dexsim bench worldmodel --config tiny-cogvideox-fun --json $(OUT)/bench_worldmodel_cogvideox.json
	$(VENV)/bin/dexsim bench step --json $(OUT)/bench_step.json
	$(VENV)/bin/dexsim bench plan --tasks 20 --candidates 8 --seed 0 --json $(OUT)/bench_plan.json

# Regenerate the default model's data and retrain it from scratch (about thirteen hours on 2 CPU cores):
# v1 (the residual compact model, 3,000 steps on 1,000 tabletop clips), then v2 from v1's weights
# (compact-warp, pyramid loss, 2,000 steps on tabletop clips 0-259 + 160 drawer-scene clips), then v3 from v2's
# (changed pixels weighted 1 + 4, bf16 autocast, 3,000 + 6,000 steps on tabletop clips 0-899 + 300 drawer clips), then v4
# from v3's (changed pixels weighted 1 + 8, lr 1.5e-4, data order seed 1, 6,000 steps on the same clips), then v5 from
# v4's (weighted 1 + 16, 5,000 steps on the same clips, then 5,000 more with 300 push / pick-and-place and 200 drawer
# open/close clips of seed 5 added).
DATA ?= data
train-default: sysdeps $(STAMP)
	$(VENV)/bin/dexsim datagen --out $(DATA)/train --clips 1000 --split train --workers 2
	$(VENV)/bin/dexsim datagen --out $(DATA)/heldout --clips 60 --split heldout --workers 2
	$(VENV)/bin/dexsim datagen --scene drawer --out $(DATA)/heldout-drawer --clips 40 --split heldout --workers 2
	$(VENV)/bin/dexsim train --preset compact-from-scratch --data $(DATA)/train --validation-data $(DATA)/heldout \
		--out $(OUT)/train-default-v1 --steps 3000 --batch-size 4 --checkpoint-every 200 --validate-every 500
	$(VENV)/bin/dexsim datagen --out $(DATA)/train-v2 --clips 260 --split train --workers 2
	$(VENV)/bin/dexsim datagen --scene drawer --out $(DATA)/train-drawer --clips 160 --split train --workers 2
	$(VENV)/bin/dexsim train --preset compact-from-scratch --model compact-warp --init-from $(OUT)/train-default-v1/model \
		--loss-pyramid 3 --lr 3e-4 --data $(DATA)/train-v2 --data $(DATA)/train-drawer --validation-data $(DATA)/heldout \
		--out $(OUT)/train-default-v2 --steps 2000 --batch-size 4 --checkpoint-every 100 --validate-every 250
	$(VENV)/bin/dexsim datagen --out $(DATA)/train-v3 --clips 900 --split train --workers 2
	$(VENV)/bin/dexsim datagen --scene drawer --out $(DATA)/train-drawer --clips 300 --split train --workers 2
	$(VENV)/bin/dexsim train --preset compact-from-scratch --model compact-warp --init-from $(OUT)/train-default-v2/model \
		--loss-pyramid 3 --change-weight 4 --mixed-precision bf16 --lr 2e-4 --data $(DATA)/train-v3 \
		--data $(DATA)/train-drawer --out $(OUT)/train-default-v3a --steps 3000 --checkpoint-every 250 --validate-every 1000
	$(VENV)/bin/dexsim train --preset compact-from-scratch --model compact-warp --init-from $(OUT)/train-default-v3a/model \
		--loss-pyramid 3 --change-weight 4 --mixed-precision bf16 --lr 2e-4 --data $(DATA)/train-v3 \
		--data $(DATA)/train-drawer --out $(OUT)/train-default-v3 --steps 6000 --checkpoint-every 500 --validate-every 2000
	$(VENV)/bin/dexsim train --preset compact-from-scratch --model compact-warp --init-from $(OUT)/train-default-v3/model \
		--loss-pyramid 3 --change-weight 8 --mixed-precision bf16 --lr 1.5e-4 --seed 1 --data $(DATA)/train-v3 \
		--data $(DATA)/train-drawer --out $(OUT)/train-default-v4 --steps 6000 --checkpoint-every 500 --validate-every 500
	$(VENV)/bin/dexsim train --preset compact-from-scratch --model compact-warp --init-from $(OUT)/train-default-v4/model \
		--loss-pyramid 3 --change-weight 16 --mixed-precision bf16 --lr 1.5e-4 --seed 2 --data $(DATA)/train-v3 \
		--data $(DATA)/train-drawer --out $(OUT)/train-default-v5a --steps 5000 --checkpoint-every 500 --validate-every 500
	$(VENV)/bin/dexsim datagen --out $(DATA)/train-pp5 --clips 300 --seed 5 --split train --kinds push,pick_place --workers 2
	$(VENV)/bin/dexsim datagen --scene drawer --out $(DATA)/train-dr5 --clips 200 --seed 5 --split train --kinds drawer \
		--workers 2
	$(VENV)/bin/dexsim train --preset compact-from-scratch --model compact-warp --init-from $(OUT)/train-default-v5a/model \
		--loss-pyramid 3 --change-weight 16 --mixed-precision bf16 --lr 1.5e-4 --seed 3 --data $(DATA)/train-v3 \
		--data $(DATA)/train-drawer --data $(DATA)/train-pp5 --data $(DATA)/train-dr5 --out $(OUT)/train-default-v5 \
		--steps 5000 --checkpoint-every 500 --validate-every 500
	$(VENV)/bin/dexsim train --preset motion-flow --init-from $(OUT)/train-default-v5/model --lr 5e-4 --mixed-precision bf16 \
		--seed 11 --data $(DATA)/train-v3 --data $(DATA)/train-drawer --out $(OUT)/train-default-v6-motion --steps 3000 \
		--checkpoint-every 500 --validate-every 500
	$(VENV)/bin/dexsim train --preset compact-from-scratch --model compact-warp --init-from $(OUT)/train-default-v6-motion/model \
		--loss-pyramid 3 --change-weight 16 --mixed-precision bf16 --lr 1.5e-4 --seed 12 --data $(DATA)/train-v3 \
		--data $(DATA)/train-drawer --out $(OUT)/train-default-v6-base --steps 3000 --checkpoint-every 500 --validate-every 1000
	$(VENV)/bin/dexsim train --preset motion-flow --init-from $(OUT)/train-default-v6-base/model --occlusion-loss 1 \
		--occlusion-balanced --lr 3e-4 --mixed-precision bf16 --seed 13 --data $(DATA)/train-v3 --data $(DATA)/train-drawer \
		--out $(OUT)/train-default-v6-occlusion --steps 1500 --checkpoint-every 500 --validate-every 500
	$(VENV)/bin/dexsim train --preset compact-from-scratch --model compact-warp --init-from $(OUT)/train-default-v6-occlusion/model \
		--occlusion-prior -4 --loss-pyramid 3 --change-weight 16 --mixed-precision bf16 --lr 1e-4 --seed 14 \
		--data $(DATA)/train-v3 --data $(DATA)/train-drawer --out $(OUT)/train-default-v6a --steps 1200 --checkpoint-every 400 \
		--validate-every 1200
	$(VENV)/bin/dexsim train --preset compact-from-scratch --model compact-warp --init-from $(OUT)/train-default-v6a/model \
		--occlusion-gate --loss-pyramid 3 --change-weight 16 --mixed-precision bf16 --lr 1e-4 --seed 16 \
		--data $(DATA)/train-v3 --data $(DATA)/train-drawer --out $(OUT)/train-default --steps 600 --checkpoint-every 300 \
		--validate-every 600
	$(VENV)/bin/dexsim eval --data $(DATA)/heldout --model $(OUT)/train-default/model --json $(OUT)/eval_heldout.json
	$(VENV)/bin/dexsim eval --data $(DATA)/heldout-drawer --model $(OUT)/train-default/model --json $(OUT)/eval_heldout_drawer.json

# Regenerate the default hand forecaster's data and retrain it (about 90 min on 2 CPU cores: 32 min of training,
# 9 min of cached goal renders, the action bank's replay check at export (43 min on one core, measured while the
# other was busy), the data generation before), then measure it on the held-out splits.
train-forecaster: sysdeps $(STAMP)
	$(VENV)/bin/dexsim datagen --scene tabletop --out $(DATA)/train --clips 900 --seed 0 --workers 2
	$(VENV)/bin/dexsim datagen --scene drawer --out $(DATA)/train-drawer --clips 300 --seed 0 --workers 2
	$(VENV)/bin/dexsim datagen --out $(DATA)/heldout --clips 60 --split heldout --workers 2
	$(VENV)/bin/dexsim datagen --scene drawer --out $(DATA)/heldout-drawer --clips 40 --split heldout --workers 2
	$(VENV)/bin/dexsim train --preset forecast-flow-matching --model default --data $(DATA)/train \
		--data $(DATA)/train-drawer --validation-data $(DATA)/train --out $(OUT)/train-forecaster --steps 8000 \
		--checkpoint-every 500 --validate-every 2000
	$(VENV)/bin/dexsim bench forecast --data $(DATA)/heldout --data $(DATA)/heldout-drawer \
		--forecaster $(OUT)/train-forecaster/model --json $(OUT)/bench_forecast.json

install: sysdeps $(STAMP)

sysdeps:
	@bash scripts/ensure_system_deps.sh

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	@touch $(STAMP)

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache

# audioldm-lora: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch and torchaudio must be a matching pair (a torchaudio that fails to load breaks `import diffusers`).
# These are the pair that installs on the reference machines (docs/environment.md, 'torch and torchaudio');
# override for your CUDA/CPU build.
TORCH_SPEC ?= torch==2.14.1 torchaudio==2.11.0
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP) ## Create .venv and install the project with its test dependencies

# Two pytest workers of one thread each: the tests are many small CPU-bound runs, which two single-threaded
# processes finish in about two thirds of the time one two-threaded process takes (docs/reliability.md).
TEST_WORKERS ?= 2
PYTEST_PARALLEL := -n $(TEST_WORKERS) --dist loadfile
# The whole suite keeps tests/conftest.py's longest-first order: xdist otherwise hands out files by test count,
# which started the demo module (8 tests, 12 minutes) late. The fast tier has no long module and is faster without.
KEEP_ORDER := --no-loadscope-reorder
# Bytecode is written even where the environment says not to (PYTHONDONTWRITEBYTECODE=1 on some CI images): the
# tests start dozens of Python subprocesses, and each would compile the project's modules again.
TEST_ENV := OMP_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=
test: venv ## Run the whole test suite (what CI runs)
	$(TEST_ENV) $(BIN)/python -m pytest $(PYTEST_PARALLEL) $(KEEP_ORDER) $(PYTEST_ARGS)

test-fast: venv ## Run the tests not marked slow
	$(TEST_ENV) $(BIN)/python -m pytest -m "not slow" $(PYTEST_PARALLEL) $(PYTEST_ARGS)

browser: ## Install Debian's Chromium for the listening-test browser tests (root; never downloads a browser build)
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }
	@chromium --version

REAL_MUSIC ?= .cache/real-music
TOY_BASE ?= .cache/toy-audioldm-real
# One thread: float sums in one order, so the toy base and the table are the same on any machine (README).
DEMO_ENV := OMP_NUM_THREADS=1
# Real music needs twice the procedural world's UNet steps for a toy base that passes across seeds (README, 'Demo').
demo: venv ## Offline demo (~11.5 min, 1 CPU): LoRA teaches a toy AudioLDM a musical tradition it never heard; KAD/FAD table
	$(DEMO_ENV) $(BIN)/audioldm-lora build-real-music $(REAL_MUSIC) --clips-per-genre 64 --reference-clips 64 --duration 1.28
	$(DEMO_ENV) $(BIN)/audioldm-lora build-toy-base $(TOY_BASE) --catalogue $(REAL_MUSIC) --recipe.unet_steps 1400
	$(DEMO_ENV) $(BIN)/lightning fit --config configs/demo.yaml --model.init_args.pretrained_model=$(TOY_BASE) \
		--data.init_args.manifest=$(REAL_MUSIC)/manifest.csv
	$(DEMO_ENV) $(BIN)/audioldm-lora toy-report --base $(TOY_BASE) --adapter runs/demo/adapters/final

SYNTHETIC_TOY_BASE ?= .cache/toy-audioldm
demo-synthetic: venv ## The demo on procedural genres (~8.5 min, 1 CPU): where the README's conditioning-gain tables come from
	$(DEMO_ENV) $(BIN)/audioldm-lora build-toy-base $(SYNTHETIC_TOY_BASE)
	$(DEMO_ENV) $(BIN)/lightning fit --config configs/demo_synthetic.yaml --model.init_args.pretrained_model=$(SYNTHETIC_TOY_BASE)
	$(DEMO_ENV) $(BIN)/audioldm-lora toy-report --base $(SYNTHETIC_TOY_BASE) --adapter runs/demo-synthetic/adapters/final

smoke: venv ## Fastest end-to-end run: a tiny random AudioLDM, 20 LoRA steps, then predict (checks the plumbing)
	$(BIN)/lightning fit --config configs/tiny.yaml
	$(BIN)/lightning predict --config configs/tiny.yaml --ckpt_path "$$(ls -td runs/tiny/tiny/version_*/checkpoints/last.ckpt | head -n 1)"

CONFIG ?= configs/genre.yaml
SWEEP ?= configs/sweep.yaml
sweep: venv ## Rank/alpha sweep of CONFIG over SWEEP: on W&B with a key, else locally (SWEEP_BACKEND=local forces it)
	$(BIN)/audioldm-lora sweep --sweep $(SWEEP) --config $(CONFIG) $(SWEEP_ARGS)

bench: venv ## Run the benchmarks (results go to docs/benchmarks.md)
	$(BIN)/python benchmarks/run_all.py

clean: ## Remove run outputs and caches (keeps .venv)
	rm -rf runs lightning_logs .cache wandb .pytest_cache

.PHONY: help venv test test-fast browser demo demo-synthetic smoke sweep bench clean

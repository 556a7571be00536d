# Quick start targets: each one sets up a local .venv on a fresh machine, then runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The optional backends and trackers, so that their tests run rather than skip.
$(VENV)/.ray: $(STAMP)
	$(PY) -m pip install -q -e ".[dev,ray,tensorboard,mlflow,convex,hf]"
	touch $(VENV)/.ray

# The SNN peers for tests/test_interop.py. --no-deps: spikingjelly requires torchvision and
# torchaudio, which would not match the CPU torch; its neuron modules need only loguru.
$(VENV)/.interop: $(STAMP)
	$(PY) -m pip install -q --no-deps "snntorch==1.0.0" "spikingjelly==2.0.0"
	$(PY) -m pip install -q "loguru>=0.7,<1"
	touch $(VENV)/.interop

demo: $(STAMP)
	$(VENV)/bin/htaf compare --out htaf-runs

test: $(VENV)/.ray $(VENV)/.interop
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/activation.py

clean:
	rm -rf $(VENV) htaf-runs .pytest_cache .ruff_cache

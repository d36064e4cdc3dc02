#!/usr/bin/env bash
# One prepared GPU check: the GPU-relevant tests and the benchmarks, everything written under
# one folder (default benchmarks/results/gpu/), within a time budget (default 460 s of the
# 8 minutes of device time a check gets).
#
#   bash benchmarks/gpu_check.sh                      # on the GPU machine, from the repository root
#   bash benchmarks/gpu_check.sh --out "$OUT/gpu"     # where the device tool collects files
#   bash benchmarks/gpu_check.sh --dry-run --out /tmp/x   # the same parts on CPU, tiny sizes (< 60 s)
#
# It installs nothing (the GPU machine has no registry access): it runs the working tree with
# the Python found first of $PYTHON, python3, python (jax, flax, optax, torch, triton there).
#
# Parts, each under `timeout` (its own budget, cut to what is left of --budget; a part that
# cannot get 10 s is skipped), its output in logs/<part>.log, its elapsed time printed:
#   env               nvidia-smi.txt, versions.json (jax, jaxlib, flax, optax, torch, triton, CUDA, devices)
#   test_dtypes       dtype policy: bfloat16/float16 moments computed in float32 and rounded once,
#                     float16 second moments kept in float32, dtypes kept through the step
#   test_sharding     state shardings, ZeRO-1 specs and shard_state on the one device
#   test_nan          NaN/Inf detection (every size and position) and the guards that skip a NaN step
#   test_muon_bf16    Muon's bfloat16 Newton-Schulz (skipped without tests/test_muon.py)
#   test_low_precision  stochastic rounding, Kahan summation
#   test_adam_8bit    8-bit Adam: the fused step bit for bit against the unfused formulation
#   bench_step        optimizer_step.py on the ResNet-50-like and GPT-2-like trees (canonical, adamw)
#   bench_step_1b     optimizer_step.py on gpt_1b (1.1B params; canonical)
#   bench_state       state_options.py (float32, bf16, 8-bit; all alive at once) on both trees
# Test parts write JUnit XML (tests/<part>.xml); benchmarks their JSON, Markdown and PNG.
# summary.md lists every part with its status and time; the exit status is 1 if any part
# failed, timed out or was skipped for lack of time.
#
# --dry-run: JAX_PLATFORMS=cpu, tests collected but not run (--collect-only: the files import
# and each selection matches tests), benchmarks with --tiny (~1/1000 sizes, 1 repeat) and
# fewer contenders/options, gpt_1b with --force. The same parts, files and summary.

set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD

DRY=0
OUT=""
BUDGET=460
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT="$2"; shift ;;
    --budget) BUDGET="$2"; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$OUT" ]; then
  if [ "$DRY" = 1 ]; then OUT=$(mktemp -d /tmp/gpu_check_dry.XXXXXX); else OUT=$ROOT/benchmarks/results/gpu; fi
fi
mkdir -p "$OUT/logs" "$OUT/tests" || exit 2
OUT=$(cd "$OUT" && pwd)

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for candidate in python3 python; do
    if command -v "$candidate" > /dev/null 2>&1; then PY=$candidate; break; fi
  done
fi
if [ -z "$PY" ]; then echo "gpu_check.sh: no python found" >&2; exit 2; fi

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX and torch share the GPU
export MPLBACKEND=Agg
if [ "$DRY" = 1 ]; then
  export JAX_PLATFORMS=cpu
  DEVICE=cpu
else
  DEVICE=gpu
fi

START=$(date +%s)
SUMMARY=$OUT/summary.md
FAILED=0
{
  echo "# GPU check$([ "$DRY" = 1 ] && echo ' (dry run on CPU)')"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ); python: $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])' 2>&1); budget ${BUDGET} s"
  echo
  echo "| part | status | seconds | log |"
  echo "|---|---|---:|---|"
} > "$SUMMARY"

record() { # part status seconds
  echo "| $1 | $2 | $3 | logs/$1.log |" >> "$SUMMARY"
  echo "[gpu_check] $1: $2 in $3 s (total $(($(date +%s) - START)) s)"
}

# part NAME SECONDS COMMAND...: run COMMAND under timeout, log to logs/NAME.log
part() {
  local name=$1 budget=$2
  shift 2
  local left=$((BUDGET - ($(date +%s) - START)))
  if [ "$left" -lt 10 ]; then
    echo "skipped: the time budget (${BUDGET} s) is spent" > "$OUT/logs/$name.log"
    record "$name" "skipped (budget)" 0
    FAILED=1
    return
  fi
  [ "$budget" -gt "$left" ] && budget=$left
  local t0 rc status
  t0=$(date +%s)
  echo "[gpu_check] $name (up to ${budget} s): $*"
  { echo "\$ $*"; echo; } > "$OUT/logs/$name.log"
  timeout --kill-after=10 "$budget" "$@" >> "$OUT/logs/$name.log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124 | 137) status="timeout (${budget} s)"; FAILED=1 ;;
    5) status="no tests selected" ;;
    *) status="failed (exit $rc)"; FAILED=1 ;;
  esac
  if [ $rc -ne 0 ]; then tail -n 5 "$OUT/logs/$name.log" | sed "s/^/[gpu_check]   /"; fi
  record "$name" "$status" $(($(date +%s) - t0))
}

# ------------------------------------------------------------------ env
env_part() {
  if command -v nvidia-smi > /dev/null 2>&1; then
    { nvidia-smi; echo; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; } \
      > "$OUT/nvidia-smi.txt" 2>&1
  else
    echo "nvidia-smi: not found on this machine" > "$OUT/nvidia-smi.txt"
  fi
  "$PY" - "$OUT/versions.json" << 'EOF'
import importlib, json, platform, subprocess, sys

out = {"python": sys.version.split()[0], "executable": sys.executable, "platform": platform.platform()}
for name in ("jax", "jaxlib", "flax", "optax", "chex", "torch", "triton", "numpy", "pytest"):
    try:
        out[name] = importlib.import_module(name).__version__
    except Exception as e:  # a missing package is a finding, not a failure
        out[name] = f"not available ({type(e).__name__})"
try:
    import jax

    out["jax_backend"] = jax.default_backend()
    out["jax_devices"] = [f"{d} ({d.device_kind})" for d in jax.devices()]
except Exception as e:
    out["jax_devices"] = f"error: {e}"
try:
    import torch

    out["torch_cuda"] = torch.version.cuda
    out["torch_cuda_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
except Exception as e:
    out["torch_cuda"] = f"error: {e}"
try:
    out["git_commit"] = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
    ).stdout.strip() or None
except Exception:
    out["git_commit"] = None
json.dump(out, open(sys.argv[1], "w"), indent=2)
print(json.dumps(out, indent=2))
EOF
}
export OUT PY
export -f env_part
part env 20 bash -c env_part

# ------------------------------------------------------------------ (a) tests
HAVE_PYTEST=1
"$PY" -c "import pytest" > /dev/null 2>&1 || HAVE_PYTEST=0
pytest_part() { # name budget files... -- selection
  local name=$1 budget=$2
  shift 2
  if [ "$HAVE_PYTEST" = 0 ]; then
    echo "skipped: pytest is not installed for $PY" > "$OUT/logs/$name.log"
    record "$name" "skipped (no pytest)" 0
    FAILED=1
    return
  fi
  local files=() sel=""
  while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then sel=$2; break; fi
    files+=("$1")
    shift
  done
  local extra=()
  [ "$DRY" = 1 ] && extra=(--collect-only)
  part "$name" "$budget" "$PY" -m pytest -o addopts="" -p no:cacheprovider -p no:hypothesispytest -q -rfE \
    --junitxml="$OUT/tests/$name.xml" ${extra[@]+"${extra[@]}"} "${files[@]}" -k "$sel"
}

pytest_part test_dtypes 40 tests/test_core.py tests/test_adaptive.py tests/test_adam_variants.py \
  tests/test_momentum.py tests/test_clipping.py tests/test_flat.py \
  -- "(dtype or bfloat16 or float16 or half or promotion) and not errors"
pytest_part test_sharding 20 tests/test_sharding.py -- "not eight_device"
pytest_part test_nan 25 tests/test_bad_input.py -- "detected or guards_skip or nan_gradient or nan_hyperparameter"
if [ -f tests/test_muon.py ]; then
  pytest_part test_muon_bf16 20 tests/test_muon.py -- "bfloat16 or bf16 or newton"
else
  echo "skipped: tests/test_muon.py is not in this tree" > "$OUT/logs/test_muon_bf16.log"
  record test_muon_bf16 "skipped (no tests/test_muon.py)" 0
fi
pytest_part test_low_precision 30 tests/test_low_precision.py -- "not bf16_training_example"
pytest_part test_adam_8bit 30 tests/test_quantized.py -- "fused or nearest or scratch or transcription or close"

# ------------------------------------------------------------------ (b) benchmarks
if [ "$DRY" = 1 ]; then
  SIZE=(--tiny --device cpu)
  STEP_CONTENDERS=(--contenders "gradchain flat,gradchain nnx.Optimizer,torch fused=True")
  BIG=(--force)
  STATE=(--tree gpt2_small --options float32,8bit)
else
  SIZE=(--device gpu --repeats 10)
  STEP_CONTENDERS=()
  BIG=()
  STATE=(--options float32,bf16,8bit --max-alive 0)
fi
# (${a[@]+"${a[@]}"}: an empty array under `set -u` on bash < 4.4)
part bench_step 70 "$PY" benchmarks/optimizer_step.py "${SIZE[@]}" ${STEP_CONTENDERS[@]+"${STEP_CONTENDERS[@]}"} \
  --tree resnet50,gpt2_small --optimizer canonical --out "$OUT"
part bench_step_1b 85 "$PY" benchmarks/optimizer_step.py "${SIZE[@]}" ${STEP_CONTENDERS[@]+"${STEP_CONTENDERS[@]}"} \
  ${BIG[@]+"${BIG[@]}"} \
  --tree gpt_1b --optimizer canonical --out "$OUT/gpt_1b"
part bench_state 100 "$PY" benchmarks/state_options.py "${SIZE[@]}" "${STATE[@]}" --out "$OUT"

{
  echo
  echo "Total $(($(date +%s) - START)) s. Files:"
  echo
  (cd "$OUT" && find . -type f ! -name summary.md | sort | sed 's/^\.\//- /')
} >> "$SUMMARY"
echo "[gpu_check] done in $(($(date +%s) - START)) s; summary: $SUMMARY"
exit $FAILED

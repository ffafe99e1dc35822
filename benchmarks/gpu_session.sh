#!/usr/bin/env bash
# The GPU machine's checklist in one script: build, run the GPU tests, time every kernel, time the loaders.
# Each stage fits one device call (10 minutes); `all` runs them in order. Logs and results go under $OUT (the device
# tool brings that folder back; it defaults to ./gpu-session-out elsewhere), and a summary is printed last.
#
#   bash benchmarks/gpu_session.sh build            # pip install --no-build-isolation -e . (CUDA for this card)
#   bash benchmarks/gpu_session.sh test [PATHS]     # pytest -m "cuda or triton or gpu" (and dali where installed)
#   bash benchmarks/gpu_session.sh report [ARGS]    # benchmarks/gpu_report.py -> $OUT/gpu_report.md and .json
#   bash benchmarks/gpu_session.sh loader DATA      # benchmarks/loader_report.py --device cuda on an image folder
#   bash benchmarks/gpu_session.sh all [DATA]       # build, test, report (and loader when DATA is given)
#
# DALI: bring it first with ../shared/device/dali-wheels.sh (it installs into /tmp/dali; this script adds that to
# PYTHONPATH). Inf-CL: a wheel under .device-wheels/ (pip download --no-deps inf-cl) is installed by `build`.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-session-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
[ -d /tmp/dali ] && export PYTHONPATH=/tmp/dali${PYTHONPATH:+:$PYTHONPATH}
summary=()
note() { summary+=("$1"); echo "[gpu_session] $1"; }

stage_build() {
  local arch
  arch=$($PY -c "import torch; m, n = torch.cuda.get_device_capability(); print(f'{m}{n}')" 2>/dev/null || echo 90)
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv >"$OUT/card.csv" 2>&1
  local t0=$SECONDS
  if CMAKE_CUDA_ARCHITECTURES=$arch $PY -m pip install -q --no-build-isolation --no-deps -e . >"$OUT/build.log" 2>&1
  then note "build: ok in $((SECONDS - t0)) s (sm_$arch)"
  else note "build: FAILED (see $OUT/build.log)"; tail -30 "$OUT/build.log"; return 1
  fi
  for wheel in .device-wheels/inf_cl-*.whl; do
    [ -e "$wheel" ] && $PY -m pip install -q --no-deps "$wheel" >>"$OUT/build.log" 2>&1 && note "installed $(basename "$wheel")"
  done
  $PY -c "import inv_kernels as k; print('cuda_ext', k.HAS_CUDA_EXT, k.CUDA_MISSING, 'triton', k.HAS_TRITON, 'dali', k.HAS_DALI)" \
    | tee -a "$OUT/build.log"
}

stage_test() {  # extra arguments go to pytest (e.g. tests/ops, to split the run over two calls)
  local markers="cuda or triton or gpu"
  $PY -c "import nvidia.dali" 2>/dev/null && markers="$markers or dali"
  local t0=$SECONDS
  $PY -m pytest -q -m "$markers" -p no:cacheprovider --junitxml="$OUT/tests.xml" "$@" >"$OUT/tests.log" 2>&1
  local rc=$?
  note "tests ($markers): rc=$rc in $((SECONDS - t0)) s: $(tail -1 "$OUT/tests.log")"
  [ $rc -eq 0 ] || grep -E "^(FAILED|ERROR)" "$OUT/tests.log" | head -20
  return $rc
}

stage_report() {
  local t0=$SECONDS
  $PY benchmarks/gpu_report.py --out "$OUT/gpu_report.md" "$@" >"$OUT/report.log" 2>&1
  local rc=$?
  note "gpu_report: rc=$rc in $((SECONDS - t0)) s -> $OUT/gpu_report.md"
  [ $rc -eq 0 ] || tail -20 "$OUT/report.log"
  return $rc
}

stage_loader() {
  local data=${1:?loader: give the image folder (e.g. Tiny-ImageNet-100 train/)}
  local rc=0 size t0
  for size in 64 224; do  # the two sizes of issue 6's DataLoader baseline
    t0=$SECONDS
    $PY benchmarks/loader_report.py --data "$data" --size $size --device cuda --out "$OUT/loader_report_$size.md" \
      >"$OUT/loader_$size.log" 2>&1 || rc=1
    note "loader_report ${size} px: rc=$rc in $((SECONDS - t0)) s -> $OUT/loader_report_$size.md"
  done
  [ $rc -eq 0 ] || tail -20 "$OUT"/loader_*.log
  return $rc
}

stage=${1:-all}
shift || true
status=0
case "$stage" in
  build) stage_build || status=1 ;;
  test) stage_test "$@" || status=1 ;;
  report) stage_report "$@" || status=1 ;;
  loader) stage_loader "$@" || status=1 ;;
  all)
    stage_build || exit 1
    stage_test || status=1
    stage_report || status=1
    if [ $# -gt 0 ]; then stage_loader "$1" || status=1; fi
    ;;
  *) echo "usage: bash benchmarks/gpu_session.sh build|test|report|loader DATA|all [DATA]" >&2; exit 2 ;;
esac
echo
echo "== gpu_session summary =="
printf '%s\n' "${summary[@]}"
exit $status

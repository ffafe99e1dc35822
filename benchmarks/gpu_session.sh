#!/usr/bin/env bash
# The GPU checklist: build the CUDA kernels for this card, run the GPU tests, time every kernel, time the loaders.
usage() {
  cat <<'EOF'
usage: bash benchmarks/gpu_session.sh [--out DIR] STAGE [ARGS]

Runs on a machine with an NVIDIA GPU, from a checkout of the project with its Python environment active.
Logs and results go to DIR (default ./gpu-session-out); each stage rewrites its own files there, and a summary is
printed last.

stages:
  build            pip install --no-build-isolation --no-deps -e . with the CUDA kernels for this card's
                   architecture; installs an Inf-CL wheel found in $WHEELS (default .device-wheels/)
  test [ARGS]      pytest -m "cuda or triton or gpu" (and "dali" where NVIDIA DALI is installed); ARGS go to
                   pytest, e.g. tests/ops to run one folder
  report [ARGS]    benchmarks/gpu_report.py -> DIR/gpu_report.md and .json; ARGS go to it, e.g. --only infonce
  loader FOLDER    benchmarks/loader_report.py --device cuda on an image folder with class subfolders, at 64 and
                   224 px -> DIR/loader_report_64.md and DIR/loader_report_224.md
  all [FOLDER]     build, test and report, then loader when FOLDER is given

environment: PYTHON (default python3), WHEELS (default .device-wheels).
EOF
}
set -uo pipefail

OUT=gpu-session-out
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -o|--out)
      [ $# -ge 2 ] || { echo "gpu_session.sh: --out needs a folder" >&2; exit 2; }
      OUT=$2; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    *) break ;;
  esac
done
stage=${1:-}
[ $# -gt 0 ] && shift
case "$stage" in
  build|test|report|all) ;;
  loader)
    [ $# -ge 1 ] || { echo "gpu_session.sh: loader needs an image folder (loader FOLDER)" >&2; exit 2; } ;;
  "") usage >&2; exit 2 ;;
  *) echo "gpu_session.sh: unknown stage '$stage' (build, test, report, loader, all)" >&2; exit 2 ;;
esac
if [ "$stage" = loader ] || { [ "$stage" = all ] && [ $# -ge 1 ]; }; then
  [ -d "$1" ] || { echo "gpu_session.sh: image folder '$1' is not a folder" >&2; exit 2; }
fi

absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
OUT=$(absolute "$OUT")
[ "$stage" = loader ] || [ "$stage" = all ] && [ $# -ge 1 ] && set -- "$(absolute "$1")" "${@:2}"
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.device-wheels}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
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
  for wheel in "$WHEELS"/inf_cl-*.whl; do
    [ -e "$wheel" ] && $PY -m pip install -q --no-deps "$wheel" >>"$OUT/build.log" 2>&1 && note "installed $(basename "$wheel")"
  done
  $PY -c "import inv_kernels as k; print('cuda_ext', k.HAS_CUDA_EXT, k.CUDA_MISSING, 'triton', k.HAS_TRITON, 'dali', k.HAS_DALI)" \
    | tee -a "$OUT/build.log"
}

stage_test() {
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
  local data=$1 rc=0 size t0
  for size in 64 224; do  # a small-image and an ImageNet-size view
    t0=$SECONDS
    $PY benchmarks/loader_report.py --data "$data" --size $size --device cuda --out "$OUT/loader_report_$size.md" \
      >"$OUT/loader_$size.log" 2>&1 || rc=1
    note "loader_report ${size} px: rc=$rc in $((SECONDS - t0)) s -> $OUT/loader_report_$size.md"
  done
  [ $rc -eq 0 ] || tail -20 "$OUT"/loader_*.log
  return $rc
}

status=0
case "$stage" in
  build) stage_build || status=1 ;;
  test) stage_test "$@" || status=1 ;;
  report) stage_report "$@" || status=1 ;;
  loader) stage_loader "$1" || status=1 ;;
  all)
    stage_build || exit 1
    stage_test || status=1
    stage_report || status=1
    if [ $# -gt 0 ]; then stage_loader "$1" || status=1; fi
    ;;
esac
echo
echo "== gpu_session summary =="
printf '%s\n' "${summary[@]}"
exit $status

#!/usr/bin/env bash
# A lean device-tool session (see /work/.library/device/README.md) for a short device budget: build the CUDA
# extension, run tests/test_cuda.py, then bench_nnls_gpu.py --targets and the kernels of one float32 k = 32
# call. Full logs under $OUT, a short summary last. Run from the repository root on the GPU machine, tensorly's
# wheel in .whl/:
#     BUDGET=185 bash benchmarks/gpu_session_short.sh
# BUDGET (seconds) bounds the whole script: each step gets what is left of it, the benchmark last.
# The layout and register budget of the k <= 32 kernels are build choices (setup.py: NEURALNMF_CUDA_PACK=1|2,
# NEURALNMF_CUDA_MIN_BLOCKS=1|3|4|6); set them in the environment of this script to build and time another one,
# e.g. NEURALNMF_CUDA_PACK=1 BUDGET=185 bash benchmarks/gpu_session_short.sh (the earlier layout).
set -o pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
BUDGET=${BUDGET:-185}
T0=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

stamp "setup"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheel install failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader | tee "$OUT/gpu.txt"

stamp "build"
FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 timeout 110 python3 setup.py build_ext --inplace > "$OUT/build.log" 2>&1
BUILD=$?
grep -E "neuralnmf build:| error" "$OUT/build.log" | head -20
[ $BUILD -eq 0 ] || { echo "BUILD FAILED ($BUILD)"; tail -40 "$OUT/build.log"; exit 1; }

stamp "tests/test_cuda.py"
T=$(( $(left) - 60 )); [ $T -gt 60 ] && T=60
timeout $T python3 -m pytest -q tests/test_cuda.py > "$OUT/tests.log" 2>&1
TESTS=$?
echo "tests exit $TESTS"

stamp "bench_nnls_gpu --targets"
T=$(( $(left) - 5 ))
timeout $T python3 benchmarks/bench_nnls_gpu.py --targets --profile --profile-only float32:32 \
  > "$OUT/bench_nnls_gpu.md" 2>&1
echo "bench exit $?"

stamp "summary"
echo "=== tests"; grep -E "^(FAILED|ERROR)|passed|failed|error" "$OUT/tests.log" | tail -12
echo "=== nnls"
sed -n '/^## Times/,/^`\*`/p' "$OUT/bench_nnls_gpu.md" | grep "^|" | cut -d'|' -f2-9,17-20
grep "^- CUDA kernels built with" "$OUT/bench_nnls_gpu.md"
grep -A9 "^Kernels of one" "$OUT/bench_nnls_gpu.md" | grep -E "^Kernels|^\| [a-z]" | cut -c1-110
sed -n '/^## Targets/,$p' "$OUT/bench_nnls_gpu.md" | grep "^|"
grep -B2 -A10 "Traceback" "$OUT/bench_nnls_gpu.md" | tail -12
stamp "done"

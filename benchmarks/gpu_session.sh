#!/usr/bin/env bash
# One device-tool session on a lent GPU (see /work/.library/device/README.md): build the CUDA extension, run
# the CUDA tests and the GPU benchmarks, full logs under $OUT, a short summary last. Run from the repository
# root on the GPU machine, with tensorly's wheel carried in .whl/ (the image has no tensorly):
#     bash benchmarks/gpu_session.sh
# Each step has its own time limit so that the session ends in about 6 minutes whatever happens.
set -o pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

stamp "setup"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheel install failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"

stamp "build"
FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 timeout 300 python3 setup.py build_ext --inplace > "$OUT/build.log" 2>&1
BUILD=$?
grep -E "neuralnmf build:|error" "$OUT/build.log" | head -20
[ $BUILD -eq 0 ] || { echo "BUILD FAILED ($BUILD)"; tail -60 "$OUT/build.log"; exit 1; }
python3 -c "import neuralnmf; print('CUDA kernels:', neuralnmf._extension.built_with_cuda())"

stamp "smoke"
timeout 90 python3 benchmarks/gpu_smoke.py 2>&1 | tee "$OUT/smoke.log"
SMOKE=$?
[ $SMOKE -eq 124 ] && { echo "SMOKE TIMED OUT: a kernel hangs? stopping"; exit 1; }

stamp "tests"
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_tensor_cuda.py \
  tests/test_nnls_registration.py > "$OUT/tests.log" 2>&1
echo "tests exit $?"

stamp "bench_nnls_gpu --targets"
timeout 200 python3 benchmarks/bench_nnls_gpu.py --targets --profile > "$OUT/bench_nnls_gpu.md" 2>&1
echo "bench_nnls_gpu exit $?"

stamp "bench_train_gpu"
timeout 240 python3 benchmarks/bench_train_gpu.py > "$OUT/bench_train_gpu.md" 2>&1
echo "bench_train_gpu exit $?"

stamp "ncu (warp stall reasons of the k = 32 and k = 64 forward kernels, M = 2e5)"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ -n "$NCU" ]; then
  timeout 60 "$NCU" --clock-control none -k regex:group_nnls_kernel -c 2 \
    --section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats \
    python3 -c "
import torch, neuralnmf
from neuralnmf import ops
with ops.validation(False):
    for k in (32, 64):
        A = torch.rand(1024, k, device='cuda'); X = torch.rand(1024, 200000, device='cuda')
        ops.nnls(X, A); torch.cuda.synchronize()
" > "$OUT/ncu.txt" 2>&1
  echo "ncu exit $?"
else
  echo "no ncu"
fi

stamp "summary"
echo "=== tests"; grep -E "^(FAILED|ERROR)|passed|failed" "$OUT/tests.log" | tail -25
echo "=== nnls"; sed -n '/^## Times/,/^`\*`/p' "$OUT/bench_nnls_gpu.md" | grep "^|"
sed -n '/^## Targets/,$p' "$OUT/bench_nnls_gpu.md" | grep "^|"
sed -n '/^## Register budgets/,/^Kernels/p' "$OUT/bench_nnls_gpu.md" | grep "^|"
grep -A3 "group_nnls_kernel<32\|group_support_kernel<32" "$OUT/bench_nnls_gpu.md" | grep "^| void" | head -4
grep -E "group_nnls_kernel|Warp Cycles Per Issued|Achieved Occupancy|Issue Slots Busy|Stall|Registers Per|Theoretical Occ|No Eligible|Compute \(SM\) Throughput|Memory Throughput" "$OUT/ncu.txt" | head -40
grep -B2 -A12 "Traceback" "$OUT/bench_nnls_gpu.md" | tail -15
echo "=== train"; sed -n '/^## Seconds/,$p' "$OUT/bench_train_gpu.md"
tail -5 "$OUT/bench_train_gpu.md" | grep -i "error\|Traceback" && tail -20 "$OUT/bench_train_gpu.md"
stamp "done"

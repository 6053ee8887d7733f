#!/bin/bash
# Runs on the CUDA machine (no Go, no network), from the repository root,
# with .gocarry/ carried along (scripts/device/pack.sh makes it):
#   1. unpacks the Go toolchain and the vendored modules,
#   2. builds engine/cuda's test binary and the loramix CLI with -tags cuda,
#   3. runs the gpu-labeled specs and the generation benchmark,
# writing logs and bench.json to $OUT. STEPS limits what runs
# (default "specs bench cli"; "ncu" adds a profile of one gemvx); FOCUS
# limits the specs to those whose text matches it.
# Usage (device): OUT=/tmp/out bash scripts/device/run.sh
set -uo pipefail
R=$PWD
OUT=${OUT:-/tmp/loramix-out}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
STEPS=${STEPS:-specs bench cli}
mkdir -p "$OUT" /tmp/go
tar xJf .gocarry/go.tar.xz -C /tmp/go || exit 1
rm -rf vendor && tar xJf .gocarry/vendor.tar.xz || exit 1
export GOROOT=/tmp/go PATH=/tmp/go/bin:$PATH GOTOOLCHAIN=local GOFLAGS=-mod=vendor GOCACHE=/tmp/gocache GOPATH=/tmp/gopath
export CGO_ENABLED=1
# the packed toolchain has no vet; go test looks the tool up even with -vet=off
vet=$GOROOT/pkg/tool/linux_amd64/vet
[[ -e $vet ]] || { printf '#!/bin/sh\nexit 0\n' >"$vet"; chmod +x "$vet"; }
export CGO_CFLAGS="-I$R/engine/cuda/include -I$CUDA_HOME/include"
export CGO_LDFLAGS="-L$CUDA_HOME/lib64 -L$CUDA_HOME/lib64/stubs"
export LD_LIBRARY_PATH=$CUDA_HOME/lib64:${LD_LIBRARY_PATH:-}
export XDG_CACHE_HOME=/tmp/cache
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1
  grep -m1 'define CUDA_VERSION' "$CUDA_HOME/include/cuda.h"
  grep -n 'define cuCtxCreate \|define cuMemAdvise \|define cuMemPrefetchAsync \|define cuGraphAddDependencies \|define cuGraphGetEdges ' "$CUDA_HOME/include/cuda.h"
  go version; gcc --version | head -1
} 2>&1 | tee "$OUT/env.txt"
t=$(date +%s)
go build -tags cuda ./engine/cuda/ gorgonia.org/cu/nvrtc 2>&1 | tee "$OUT/build.log"
rm -f /tmp/cuda.test; go test -vet=off -tags cuda -c -o /tmp/cuda.test ./engine/cuda/ 2>&1 | tee -a "$OUT/build.log"
[[ -x /tmp/cuda.test ]] || { echo "BUILD FAILED"; exit 1; }
echo "built in $(( $(date +%s) - t ))s"
# registers and spills of the decode products with this CUDA's NVRTC and ptxas
python3 scripts/device/nvrtc_check.py "$CUDA_HOME/lib64/libnvrtc.so" "$CUDA_HOME/bin/ptxas" 90 2>&1 |
  grep -E 'gemvxm?[tpq]?_1 |mmaxm?_(8|16)r? |error' | tee "$OUT/ptxas.txt"
status=0
if [[ $STEPS == *specs* ]]; then
  (cd engine/cuda && /tmp/cuda.test -test.run TestCUDA -test.v -ginkgo.v -ginkgo.label-filter=gpu ${FOCUS:+-ginkgo.focus="$FOCUS"} \
     -ginkgo.json-report="$OUT/specs.json" 2>&1) > "$OUT/specs.log"; s=$?
  [[ $s == 0 ]] || status=$s
  grep -E 'Ran |Passed|FAIL|\[FAILED\]' "$OUT/specs.log" | tail -20
  python3 -c "
import json,sys
for s in json.load(open(sys.argv[1]))[0]['SpecReports']:
    for e in s.get('ReportEntries') or []:
        if 'world' in e['Name'] or 'fp16' in e['Name'] or 'batch step' in e['Name']: print(e['Name'], e['Value']['AsJSON'])
    if s['State']=='failed': print('FAILED', s.get('LeafNodeText'), s['Failure']['Message'][:300])
" "$OUT/specs.json" 2>&1 | tail -30
fi
if [[ $STEPS == *bench* ]]; then
  (cd engine/cuda && LORAMIX_BENCH_OUT="$OUT/bench.json" timeout 300 /tmp/cuda.test -test.run '^$' \
     -test.bench Generate -test.benchtime 1x 2>&1) | tee "$OUT/bench.log" | grep -vE '^\s*$' | tail -15
  if ! grep -q '^ok\|^PASS' "$OUT/bench.log"; then
    echo "== bench failed: again with a 2-layer model, a sync after every kernel, under compute-sanitizer"
    (cd engine/cuda && LORAMIX_CUDA_SYNC=1 LORAMIX_BENCH_LAYERS=2 timeout 200 compute-sanitizer --print-limit 4 \
       /tmp/cuda.test -test.run '^$' -test.bench Generate -test.benchtime 1x 2>&1) > "$OUT/sanitizer.log"
    grep -vE '^\s*$' "$OUT/sanitizer.log" | head -40
  fi
fi
if [[ $STEPS == *ncu* ]]; then  # stall reasons of the decode products (2-layer model): q/k/v at batch 1 and 16
  # NCU_KERNELS: space-separated kernel:batch:launches-to-skip entries
  for k in ${NCU_KERNELS:-nf4_gemvxmt_1:1:8 nf4_mmaxm_16:16:8}; do
    set -- ${k//:/ }
    (cd engine/cuda && LORAMIX_BENCH_LAYERS=2 LORAMIX_BENCH_BATCHES=$2 timeout 300 "$CUDA_HOME/bin/ncu" \
       --kernel-name regex:"$1\$" --launch-skip $3 --launch-count 1 \
       --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,smsp__issue_active.avg.per_cycle_active,smsp__warps_active.avg.per_cycle_active,gpu__time_duration.sum,dram__bytes_read.sum,lts__t_bytes.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,sm__cycles_elapsed.avg,smsp__inst_executed.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum' \
       /tmp/cuda.test -test.run '^$' -test.bench Generate -test.benchtime 1x) > "$OUT/ncu-$1.log" 2>&1
    echo "== ncu $1 (batch $2): stalls per issued instruction"
    grep -E "stalled|issue_active|warps_active|duration|bytes|dram__|l1tex|cycles|inst_exec" "$OUT/ncu-$1.log" | awk '$NF+0 >= 0.05 || /duration|bytes|active|dram|l1tex|cycles|inst/' | sed 's/smsp__average_warps_issue_stalled_//' | head -30
  done
fi
if [[ $STEPS == *cli* ]]; then
  go build -tags cuda -o /tmp/loramix ./cmd/loramix 2>&1 | tail -5 | tee "$OUT/cli-build.log"
  timeout 300 /tmp/loramix bench generate --device cuda --shape llama-2-7b --quant nf4 --batch 1,16,64 \
    --prompt 128 --new 128 2>&1 | tee "$OUT/cli-bench.log"
  cp "$(ls -t bench/results/generate-cuda-*.json | head -1)" "$OUT/" 2>/dev/null
fi
exit $status

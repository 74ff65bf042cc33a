#!/usr/bin/env bash
# One device command for a lent GPU machine (no internet, Python 3.12 image with torch and transformers):
# installs the bundle that benchmarks/gpu_bundle.py prepared, then runs the CUDA check and the paper-sized
# grid benchmark (one worker vs K cells packed on the GPU). Results go to $OUT (the device tool brings it back).
#
#   .venv/bin/python benchmarks/gpu_bundle.py                  # here, where pip works: .gpu-bundle/ (~20 MiB)
#   run(command="bash benchmarks/gpu_session.sh", carry=[".gpu-bundle"], timeout_s=590)
#
# PAPER_SCALE=1 runs only the paper-size probing cell on CUDA instead (issue 27: N = 100k / 10k / 10k, 26 probes,
# D = 768, synthetic features, task + control + MDL; wall time, peak RSS and peak GPU memory), about 3 min:
#   run(command="PAPER_SCALE=1 bash benchmarks/gpu_session.sh", carry=[".gpu-bundle"], timeout_s=400)
#
# --rehearse runs the same steps on this CPU machine, quick sizes and the tiny models in place of the base
# ones, with a bundle for Python 3.11: `gpu_bundle.py --python-version 3.11 --out /tmp/bundle311`, then
# `BUNDLE=/tmp/bundle311 PYTHON=.venv/bin/python bash benchmarks/gpu_session.sh --rehearse` (about 5 min).
set -euo pipefail
cd "$(dirname "$0")/.."
REHEARSE=0
[ "${1:-}" = "--rehearse" ] && REHEARSE=1
BUNDLE="${BUNDLE:-.gpu-bundle}"
OUT="${OUT:-/tmp/gpu-session-out}"
SITE="${SITE:-/tmp/probeft-site}"
CELLS_PER_GPU="${CELLS_PER_GPU:-4}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
[ -d "$BUNDLE/wheels" ] || { echo "no $BUNDLE/wheels: run benchmarks/gpu_bundle.py first" >&2; exit 2; }

# Only the packages the image lacks; --no-deps keeps the image's own torch and transformers in charge.
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
  "$BUNDLE"/wheels/*.whl
export PYTHONPATH="$PWD:$SITE" PATH="$SITE/bin:$PATH" PYTHONUNBUFFERED=1
export PROBEFT_CACHE=/tmp/probeft-cache HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
"$PYTHON" -c "import torch, transformers, papermill, distributed; print('torch', torch.__version__, 'cuda', \
torch.cuda.is_available(), '| transformers', transformers.__version__, '| papermill', papermill.__version__)"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"

if [ "${PAPER_SCALE:-0}" = 1 ]; then
  SIZES="100000"; DEVICE=cuda; [ "$REHEARSE" = 1 ] && SIZES="2000" && DEVICE=cpu
  timeout 360 "$PYTHON" benchmarks/bench_paper_scale.py --synthetic --device $DEVICE --sizes $SIZES --dims 768 \
    --rss-limit-gib 100 --work-dir /tmp/paper-scale --out "$OUT/bench_paper_scale_cuda.json" \
    || echo "bench_paper_scale exit $?"
  exit 0
fi

DATA=/tmp/probeft-demo-data
"$PYTHON" -m probeft.grid.cli demo-data "$DATA" > /dev/null
if [ "$REHEARSE" = 1 ]; then
  timeout 300 "$PYTHON" benchmarks/gpu_check.py --data-dir "$DATA" --tokenizer "$BUNDLE/tokenizer" --quick \
    --out "$OUT/gpu_check.json" || echo "gpu_check exit $?"
  sed -e 's/random-\([a-z]*\)-base}/tiny-\1}/' configs/gpu-bench.yaml > /tmp/gpu-bench-rehearse.yaml
  CONFIG=/tmp/gpu-bench-rehearse.yaml
else
  timeout 150 "$PYTHON" benchmarks/gpu_check.py --data-dir "$DATA" --tokenizer "$BUNDLE/tokenizer" \
    --out "$OUT/gpu_check.json" || echo "gpu_check exit $?"
  CONFIG=configs/gpu-bench.yaml
fi
rm -rf /tmp/gpu-bench
timeout 400 "$PYTHON" benchmarks/bench_grid_workers.py --config "$CONFIG" --cells-per-gpu "$CELLS_PER_GPU" \
  --root /tmp/gpu-bench --keep --out "$OUT/bench_grid_gpu.json" || echo "bench_grid_workers exit $?"
# The grid logs say why a cell failed, if one did.
cp /tmp/gpu-bench/*.log "$OUT/" 2>/dev/null || true

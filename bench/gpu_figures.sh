#!/usr/bin/env bash
# Every GPU figure issue #17 asks for, in one prepared run (docs/benchmarks.md, "On a GPU"):
#
#   1. the flagship's quick profile, wall time from a cold compilation cache (target <= 90 s);
#   2. PPO steps/s at 4096 environments (target >= 15 M);
#   3. transformer training throughput against HF's Decision Transformer at d128 and d512, bf16
#      (targets at d512: >= 2x HF's tokens/s, >= 35% of the measured bf16 matmul peak).
#
# Run from the repository root: `bash bench/gpu_figures.sh [OUTDIR]` (default $OUT, else
# ./gpu-figures). Every part writes its own log there; each has its own time limit so that one
# part running long cannot take the others' time. SIMULACRA_TINY=1 shrinks every size to a CPU
# smoke check of the script itself. Needs: jax with CUDA, flax, optax, pydantic, typer, rich,
# gymnasium, matplotlib, pillow, scikit-learn, scipy, pyyaml (the project's runtime dependencies)
# and, for the peer, torch + transformers.
set -u
out="${1:-${OUT:-gpu-figures}}"
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# several JAX processes share the GPU (the bench's workers): none may take 75% of its memory up front
export XLA_PYTHON_CLIENT_PREALLOCATE=false
py="${PYTHON:-python3}"
tiny="${SIMULACRA_TINY:-0}"
lim() { if [ "$tiny" = 1 ]; then echo 900; else echo "$1"; fi; }

{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  "$py" -c 'import jax, flax, optax, sys; print("python", sys.version.split()[0], "jax", jax.__version__, "flax", flax.__version__, "optax", optax.__version__); print("devices", jax.devices())'
  "$py" -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "transformers", transformers.__version__)' 2>&1 | tail -1
  cat COMMIT 2>/dev/null || git rev-parse HEAD 2>/dev/null || true
} 2>&1 | tee "$out/environment.txt"

# 1. The quick profile from a cold cache, into a fresh root (stopped after QUICK_LIMIT seconds,
#    default 240: what it finished by then is reported from its store).
root=$(mktemp -d)
if [ "$tiny" = 1 ]; then only=(--only H1); else only=(); fi
echo "== quick profile (cold compilation cache in $root/jax)" | tee "$out/quick_profile.log"
start=$(date +%s)
timeout "$(lim "${QUICK_LIMIT:-240}")" "$py" -m simulacra.cli study run studies/flagship.yaml --profile quick "${only[@]}" \
  --root "$root/runs" --compile-cache "$root/jax" >>"$out/quick_profile.log" 2>&1
rc=$?
echo "exit $rc (124: stopped at the limit); wall $(( $(date +%s) - start )) s" | tee -a "$out/quick_profile.log"
"$py" - "$root/runs/flagship/results.sqlite" <<'EOF' 2>&1 | tee -a "$out/quick_profile.log"
import sqlite3, sys
try:
    db = sqlite3.connect(sys.argv[1])
    n, run, comp = db.execute("select count(*), sum(seconds), sum(compile_seconds) from units").fetchone()
    print(f"units stored {n}; seconds inside calls {run or 0:.1f}, of which compiling {comp or 0:.1f}")
    for row in db.execute("select process, round(sum(seconds),1), round(sum(compile_seconds),1), count(*) from units group by process order by 2 desc"):
        print("  ", *row)
except Exception as e:
    print("no store:", e)
EOF
cp "$root/runs/flagship/report.md" "$out/quick_report.md" 2>/dev/null || true

# 2. PPO throughput at 4096 environments.
if [ "$tiny" = 1 ]; then ppo=(--envs 128 --throughput-steps 100000); else ppo=(--envs 4096 --throughput-steps 40000000); fi
timeout "$(lim 70)" "$py" bench/ppo_speed.py --only throughput "${ppo[@]}" 2>&1 | tee "$out/ppo.log"

# 3. Transformer throughput, bf16, at d128 (L2) and d512 (L8).
if [ "$tiny" = 1 ]; then t=(--quick); big=(--quick); else
  t=(--d-model 128 --layers 2 --heads 4 --d-mlp 512 --batch 32 --rounds 2)
  big=(--d-model 512 --layers 8 --heads 8 --d-mlp 2048 --batch 64 --steps 5 --rounds 2)
fi
common=(--dtype bfloat16 --no-corpus --no-xla-count)
timeout "$(lim 160)" "$py" bench/transformer_throughput.py "${big[@]}" "${common[@]}" 2>&1 | tee "$out/transformer_d512.log"
timeout "$(lim 75)" "$py" bench/transformer_throughput.py "${t[@]}" "${common[@]}" 2>&1 | tee "$out/transformer_d128.log"
echo "done $(date -u +%FT%TZ)" | tee -a "$out/environment.txt"

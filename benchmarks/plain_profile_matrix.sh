#!/bin/bash
# The GPU half of issue #19 in one device call: plain torch.profiler traces (benchmarks/plain_profile_matrix.py,
# no tracekit code in that process) and their scoped references (`tracekit collect`, same shapes), packed into
# at most 6 parts of 15 MB under $OUT (the device's fetch-back limits). From the repo root on the GPU machine:
#     carry .device-kernels;  bash benchmarks/plain_profile_matrix.sh
# (or, with the kernels already unpacked in /tmp/site and this folder carried elsewhere: SITE_READY=1 bash DIR/...sh)
# Unpack here with `cat traces.tar.part* | tar x -C DIR`, then `python benchmarks/structure_matrix.py --gpu DIR`.
set -u
if [ -z "${SITE_READY:-}" ]; then source .device-kernels/activate.sh; else export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1; fi
HERE=$(cd "$(dirname "$0")" && pwd)
W=/tmp/w
mkdir -p $W/plain $W/ref
NL=6 PROMPT=64 NEW=6 # a generate of NEW tokens = one prompt forward + NEW-1 decode steps
collect() { # backend batch graphs
    python3 -m tracekit.cli.main collect --backend "$1" --arch $ARCHS --preset 130m --config n_layer=$NL \
        --seqlens $PROMPT --batch "$2" --mode prefill,decode --decode-steps $((NEW - 1)) --cuda-graphs "$3" \
        --warmup 1 --repeats 2 --out $W/ref/$1_b$2
}
plain() { # backend
    python3 $HERE/plain_profile_matrix.py --out $W/plain --backends "$1" --archs $ARCHS --n-layer $NL --prompt $PROMPT \
        --new-tokens $NEW 2>&1 | grep -v '^USDT\|Profiler clears events'
}
work() { # HF first: its plain traces are the ones issue #19 found furthest off
    nvidia-smi -L
    date; for b in 8 64 1; do collect hf $b off; done
    date; plain hf
    date; for b in 8 64 1; do collect mamba-ssm $b both; done
    date; plain mamba-ssm; date
}
export -f collect plain work
ARCHS=${ARCHS:-mamba1,mamba2}
export W NL PROMPT NEW HERE ARCHS
timeout "${BUDGET_S:-540}" bash -c work 2>&1 | tee $W/log.txt
cp $W/log.txt "$OUT/"
tar cf - -C $W plain ref | split -b 15m - "$OUT/traces.tar.part"
ls -l "$OUT"

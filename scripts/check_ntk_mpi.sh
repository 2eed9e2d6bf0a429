#!/usr/bin/env bash
# theta_ntk split over MPI ranks writes the bytes of a single-process run, and a stopped or killed
# MPI run resumes with only the missing tiles:
#   scripts/check_ntk_mpi.sh [build dir=build]
# On relu MLPs (inputs and weights made by /usr/bin/python3 with numpy), checks that
#   1. mpirun -np 3 writes a file identical (cmp) to the single-process run, each tile computed once;
#   2. a run stopped by --max-tiles exits non-zero and the same command on 2 ranks finishes it,
#      computing only the tiles that were missing, into the same bytes;
#   3. a run whose rank 1 is killed (SIGKILL) ends every rank (no hang) and a rerun on 3 ranks
#      finishes it, reusing the tiles logged before the kill, into the same bytes;
#   4. on the digits data set (1797 x 64, relu MLP 64-512-512-10, scripts/digits_ntk_inputs.py),
#      the trace kernel from mpirun -np 3 equals the single-process one byte for byte.
# Needs theta_ntk built with MPI (openmpi-bin, libopenmpi-dev). Takes about half a minute on two
# cores; exits 1 when a check fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
tool=$build/theory/tools/theta_ntk
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# Root may run mpirun (CI runs as root); more ranks than cores; the ranks' threads unbound.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Containers often forbid the cross-memory attach Open MPI's shared-memory transport uses for
# large messages; the ranks exchange only barriers and one sum, but nothing should depend on it.
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
mpi=(timeout 120 mpirun --oversubscribe --bind-to none)

fail() {
  echo "check_ntk_mpi: $*" >&2
  exit 1
}

# The tile count theta_ntk reports on its last line: "... (C of T tiles computed by R processes,
# U reused ...)" -> "C T R U".
counts() {
  sed -n 's/.*(\([0-9]*\) of \([0-9]*\) tiles computed by \([0-9]*\) process\(es\)\{0,1\}, \([0-9]*\) reused.*/\1 \2 \3 \5/p' "$1" | tail -n 1
}

/usr/bin/python3 - <<'EOF'
import json
import numpy as np
rng = np.random.default_rng(7)
# A small problem (widths 6-48-48-4, 61 inputs) and one that runs for a few seconds (width 256,
# 2000 inputs) so that a rank can be killed halfway.
for name, width, n in (("small", 48, 61), ("big", 256, 2000)):
    json.dump({"widths": [6, width, width, 4], "activation": "relu", "bias": True, "parameterisation": "ntk",
               "sigma_w": 1.4, "sigma_b": 0.1}, open(f"{name}.json", "w"))
    sizes = {"0.weight": (width, 6), "0.bias": (width,), "2.weight": (width, width), "2.bias": (width,),
             "4.weight": (4, width), "4.bias": (4,)}
    np.savez(f"{name}.npz", **{k: rng.normal(size=s) for k, s in sizes.items()})
    np.save(f"{name}_x.npy", rng.normal(size=(n, 6)))
EOF
small=(--model small.json --weights small.npz --x small_x.npy --tile 8 --threads 1)
big=(--model big.json --weights big.npz --x big_x.npy --tile 16 --threads 1)

# 1. Three ranks against one process: 61 rows in tiles of 8 are 8 tiles a side, 36 computed.
"$tool" "${small[@]}" --out single.npy 2>single.err || fail "single-process run failed: $(cat single.err)"
"${mpi[@]}" -np 3 "$tool" "${small[@]}" --out three.npy 2>three.err ||
  fail "mpirun -np 3 failed: $(cat three.err)"
cmp single.npy three.npy || fail "mpirun -np 3 wrote other bytes than one process"
[[ $(counts three.err) == "36 36 3 0" ]] || fail "mpirun -np 3 reported '$(counts three.err)', not 36 of 36 tiles by 3"
echo "mpirun -np 3: 36 of 36 tiles, file identical to the single-process run"

# 2. Stopped after 2 tiles per rank, then finished on 2 ranks.
status=0
"${mpi[@]}" -np 3 "$tool" "${small[@]}" --out stopped.npy --max-tiles 2 2>stopped.err || status=$?
((status != 0)) || fail "a run stopped by --max-tiles exited 0"
[[ $(counts stopped.err) == "6 36 3 0" ]] || fail "the stopped run reported '$(counts stopped.err)', not 6 of 36 tiles"
"${mpi[@]}" -np 2 "$tool" "${small[@]}" --out stopped.npy 2>resumed.err ||
  fail "resuming on 2 ranks failed: $(cat resumed.err)"
[[ $(counts resumed.err) == "30 36 2 6" ]] || fail "the resumed run reported '$(counts resumed.err)', not 30 computed, 6 reused"
cmp single.npy stopped.npy || fail "the stopped and resumed run wrote other bytes than one process"
echo "stopped after 6 tiles on 3 ranks, resumed on 2: 30 more tiles, file identical"

# 3. Rank 1 killed once its log holds a tile (logs are written at most a second apart).
"${mpi[@]}" -np 3 "$tool" "${big[@]}" --out killed.npy 2>killed.err &
launcher=$!
for _ in $(seq 200); do
  grep -q '^done ' killed.npy.tiles.1 2>/dev/null && break
  sleep 0.05
done
grep -q '^done ' killed.npy.tiles.1 2>/dev/null || fail "rank 1 logged no tile within 10 s"
# Rank 1: the process running in this directory with OMPI_COMM_WORLD_RANK=1 (no procps needed).
victim=
for dir in /proc/[0-9]*; do
  [[ $(readlink "$dir/cwd" 2>/dev/null) == "$work" ]] || continue
  if tr '\0' '\n' <"$dir/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then victim=${dir#/proc/}; fi
done
[[ -n $victim ]] || fail "rank 1's process not found"
kill -KILL "$victim"
status=0
wait "$launcher" || status=$?
((status != 0 && status != 124)) || fail "mpirun exited $status after rank 1 was killed (0: not stopped, 124: hung)"
"${mpi[@]}" -np 3 "$tool" "${big[@]}" --out killed.npy 2>rerun.err ||
  fail "rerun after the kill failed: $(cat rerun.err)"
read -r computed total _ reused <<<"$(counts rerun.err)"
((reused > 0 && computed + reused == total)) || fail "the rerun computed $computed and reused $reused of $total tiles"
"$tool" "${big[@]}" --out killed_single.npy 2>/dev/null || fail "single-process run of the big problem failed"
cmp killed.npy killed_single.npy || fail "the killed and rerun file differs from the single-process run"
echo "rank 1 killed: every rank ended; the rerun reused $reused and computed $computed of $total tiles, file identical"

# 4. The digits kernel, 36 tiles of 256.
/usr/bin/python3 "$root/scripts/digits_ntk_inputs.py" digits
digits=(--model digits/model.json --weights digits/weights.npz --x digits/x.npy --tile 256 --threads 1)
"$tool" "${digits[@]}" --out digits_single.npy 2>/dev/null || fail "single-process digits run failed"
"${mpi[@]}" -np 3 "$tool" "${digits[@]}" --out digits_three.npy 2>digits.err ||
  fail "mpirun -np 3 on digits failed: $(cat digits.err)"
cmp digits_single.npy digits_three.npy || fail "the digits kernel from 3 ranks differs from one process"
echo "digits 1797 x 64, MLP 64-512-512-10: mpirun -np 3 kernel identical to the single-process one"

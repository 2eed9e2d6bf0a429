#!/usr/bin/env bash
# Bad input to a demo must end in a one-line report and exit status 2 (theory/demos/demo_common.hpp),
# never in an abort with a core dump:
#   scripts/check_demo_errors.sh [build dir=build]
# Feeds the built demos an --out that cannot hold files, an unknown option, a damaged data file,
# and train_digits --resume a missing, corrupted and truncated checkpoint. Every case fails before
# any training, so the whole check takes a few seconds. Exits 1 when a case does not behave.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build}
demos=$build/theory/demos
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A demo that does abort must not leave a core file behind.
ulimit -c 0

failures=0
# expect_bad_input NEEDLE COMMAND...: COMMAND must exit with status 2 and print NEEDLE on stderr.
expect_bad_input() {
  local needle=$1 status=0
  shift
  "$@" >"$work/stdout" 2>"$work/stderr" </dev/null || status=$?
  if ((status == 2)) && grep -qF -- "$needle" "$work/stderr"; then
    printf 'ok    exit 2: %s\n' "$(head -n 1 "$work/stderr")"
    return 0
  fi
  local signal=""
  if ((status > 128)); then signal=" (signal $(kill -l $((status - 128)) 2>/dev/null || echo $((status - 128))))"; fi
  printf 'FAIL  %s\n      expected exit 2 and "%s" on stderr, got exit %s%s; stderr:\n' "$*" "$needle" \
    "$status" "$signal"
  sed 's/^/      | /' "$work/stderr"
  failures=$((failures + 1))
}

touch "$work/file"
for demo in "$demos"/*; do
  [[ -f $demo && -x $demo ]] || continue
  name=$(basename "$demo")
  expect_bad_input "$name: error: --out: '$work/file' exists: Not a directory" "$demo" --out "$work/file"
done
train=$demos/train_digits
expect_bad_input "train_digits: error: --out: cannot create directory '$work/file/sub/': Not a directory" \
  "$train" --out "$work/file/sub"
expect_bad_input "train_digits: unknown argument '--bogus'" "$train" --bogus

mkdir "$work/data"
printf '1,2,3\n' | gzip >"$work/data/digits.csv.gz"
for name in train_digits hessian_demo; do
  expect_bad_input "$name: error: load_digits: $work/data/digits.csv.gz: line 1: expected 65 columns, found 3" \
    env THETA_DATA_DIR="$work/data" "$demos/$name" --out "$work/$name"
done

expect_bad_input "train_digits: error: --resume: no checkpoint at $work/resume/checkpoint.npz" \
  "$train" --out "$work/resume" --resume
# One epoch gives a real checkpoint (well under a second), then damage it.
"$train" --out "$work/resume" --stop-after 1 >/dev/null 2>&1
checkpoint=$work/resume/checkpoint.npz
cp "$checkpoint" "$work/good.npz"
printf '\377\377\377\377' | dd of="$checkpoint" bs=1 seek=200 conv=notrunc status=none
expect_bad_input "train_digits: error: load_checkpoint: $checkpoint: member 'param/layers.0.weight.npy': CRC-32 mismatch" \
  "$train" --out "$work/resume" --resume
head -c 1000 "$work/good.npz" >"$checkpoint"
expect_bad_input "train_digits: error: load_checkpoint: $checkpoint: not a zip archive" \
  "$train" --out "$work/resume" --resume

if ((failures > 0)); then
  printf 'check_demo_errors: %d case(s) failed\n' "$failures" >&2
  exit 1
fi
printf 'check_demo_errors: every demo reports bad input with exit status 2\n'

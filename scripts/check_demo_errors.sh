#!/usr/bin/env bash
# Bad input to a demo must end in a one-line report and exit status 2 (theory/demos/demo_args.hpp),
# never in an abort with a core dump:
#   scripts/check_demo_errors.sh [build dir=build]
# Feeds every demo listed in <build>/theory/demos/demos.txt an --out that cannot hold files (an
# existing regular file, and a path below one: CI runs as root, whom permission bits do not stop),
# a flag where a value belongs (--out --quick), an unknown option and an option it does not take;
# ntk_demo an unusable --dump; train_digits and hessian_demo a damaged data file; and train_digits
# --resume a missing, corrupted and truncated checkpoint. Every case fails before any training, so
# the whole check takes a few seconds. Exits 1 when a case does not behave.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Absolute: some cases run a demo from another directory.
build=$(cd "${1:-$root/build}" && pwd)
demos=$build/theory/demos
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A demo that does abort must not leave a core file behind.
ulimit -c 0

failures=0
# expect_bad_input NEEDLE COMMAND...: COMMAND must exit with status 2 and print exactly one line on
# stderr, containing NEEDLE. (Lines starting with "theta: " are the runtime's notes about this
# machine's OpenBLAS, not part of the report, and are not counted.)
expect_bad_input() {
  local needle=$1 status=0 lines
  shift
  "$@" >"$work/stdout" 2>"$work/stderr" </dev/null || status=$?
  lines=$(grep -vc '^theta: ' "$work/stderr" || true)
  if ((status == 2 && lines == 1)) && grep -qF -- "$needle" "$work/stderr"; then
    printf 'ok    exit 2: %s\n' "$(grep -v '^theta: ' "$work/stderr")"
    return 0
  fi
  local signal=""
  if ((status > 128)); then signal=" (signal $(kill -l $((status - 128)) 2>/dev/null || echo $((status - 128))))"; fi
  printf 'FAIL  %s\n      expected exit 2 and one line "%s" on stderr, got exit %s%s; stderr:\n' "$*" \
    "$needle" "$status" "$signal"
  sed 's/^/      | /' "$work/stderr"
  failures=$((failures + 1))
}

mapfile -t names <"$demos/demos.txt"
if ((${#names[@]} == 0)); then
  printf 'check_demo_errors: no demos listed in %s\n' "$demos/demos.txt" >&2
  exit 1
fi
touch "$work/file"
for name in "${names[@]}"; do
  demo=$demos/$name
  expect_bad_input "$name: error: --out: '$work/file' exists: Not a directory" "$demo" --out "$work/file"
  expect_bad_input "$name: error: --out: cannot create directory '$work/file/sub/': Not a directory" \
    "$demo" --out "$work/file/sub"
  # Run in $work, where a folder named --quick would appear if the flag were taken as the value.
  expect_bad_input "$name: error: --out needs a value DIR, got the option '--quick'" \
    env -C "$work" "$demo" --out --quick
  if [[ -e $work/--quick ]]; then
    printf 'FAIL  %s --out --quick created a folder named --quick\n' "$name"
    failures=$((failures + 1))
  fi
  expect_bad_input "$name: error: unknown argument '--bogus' (see --help)" "$demo" --bogus
done
train=$demos/train_digits
expect_bad_input "ntk_demo: error: --resume does not apply to ntk_demo (see --help)" "$demos/ntk_demo" --resume
expect_bad_input "train_digits: error: --quick does not apply to train_digits (see --help)" "$train" --quick
expect_bad_input "ntk_demo: error: --dump: cannot create directory '$work/file/dump/': Not a directory" \
  "$demos/ntk_demo" --out "$work/ntk" --dump "$work/file/dump"

mkdir "$work/data"
printf '1,2,3\n' | gzip >"$work/data/digits.csv.gz"
for name in train_digits hessian_demo; do
  expect_bad_input "$name: error: load_digits: $work/data/digits.csv.gz: line 1: expected 65 columns, found 3" \
    env THETA_DATA_DIR="$work/data" "$demos/$name" --out "$work/$name"
done

expect_bad_input "train_digits: error: --resume: no checkpoint at $work/resume/checkpoint.npz" \
  "$train" --out "$work/resume" --resume
# One epoch gives a real checkpoint (well under a second; a run stopped early exits 4), then
# damage it.
status=0
"$train" --out "$work/resume" --stop-after 1 >/dev/null 2>&1 || status=$?
if ((status != 4)); then
  printf 'FAIL  train_digits --stop-after 1: expected exit 4 (incomplete), got %s\n' "$status"
  failures=$((failures + 1))
fi
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

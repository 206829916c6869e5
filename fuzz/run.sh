#!/usr/bin/env bash
# Runs every fuzz target, one after another (one process at a time), from the seed corpus
# in fuzz/corpus plus a working corpus in $MTAD_FUZZ_WORK (default build/fuzz/work).
#   bash fuzz/run.sh runs 1000000     # a long run: 10^6 executions per target
#   bash fuzz/run.sh seconds 12       # a smoke run: 12 s per target (CI: 1 minute in all)
#   bash fuzz/run.sh runs 100000 config trigram   # only the named targets
# Needs fuzz/build.sh's binaries for the C++ targets and `pip install atheris` for the
# Python ones. A crash, hang (-timeout), memory blow-up or sanitizer report fails the run
# and leaves the input as crash-*/timeout-*/oom-* in the working folder.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
mode="${1:-seconds}" amount="${2:-12}"
shift $(($# < 2 ? $# : 2))
targets=(config safetensors trigram tokenizer decoder)
if [ "$#" -gt 0 ]; then targets=("$@"); fi
bin="$(realpath -m "${MTAD_FUZZ_BUILD:-build/fuzz}")"
work="$(realpath -m "${MTAD_FUZZ_WORK:-$bin/work}")"
limit=(-timeout=30 -rss_limit_mb=4096 -print_final_stats=1)
case "$mode" in
  runs) limit+=(-runs="$amount") ;;
  seconds) limit+=(-max_total_time="$amount") ;;
  *) echo "usage: fuzz/run.sh runs N | seconds N" >&2; exit 2 ;;
esac
for target in "${targets[@]}"; do
  mkdir -p "$work/$target"
  echo "== $target"
  if [ -x "$bin/${target}_fuzz" ]; then
    (cd "$work" && "$bin/${target}_fuzz" "${limit[@]}" "$target" "$root/fuzz/corpus/$target")
  elif [ -f "fuzz/${target}_fuzz.py" ]; then
    (cd "$work" && python3 "$root/fuzz/${target}_fuzz.py" "${limit[@]}" "$target" "$root/fuzz/corpus/$target")
  else
    echo "missing $bin/${target}_fuzz: run fuzz/build.sh" >&2; exit 1
  fi
done

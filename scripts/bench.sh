#!/usr/bin/env bash
# The project's loops, measured side by side in one run, against the goals README states:
#
#   1. a warm whole-book build (`scripts/book.sh build`) against running the same programs directly
#      (`target/debug/NAME ARGS` under `sh -c` in book/, as mdbook-cmdrun runs them): goal 1.5x;
#   2. under `scripts/book.sh serve`, the time from saving a visible change to a chapter program
#      (the title one experiment prints) to the served page showing it: goal 5 s;
#   3. a warm `cargo test` (everything compiled first): goal 90 s.
#
#   scripts/bench.sh [-n RUNS] [--tests RUNS] [--no-serve] [--no-tests]
#
# Figures 1 and 2 are the median of RUNS (default 3); the build runs are paired (build, then the
# programs, RUNS times), so that a busy neighbour slows both sides alike. The edit in 2 is undone
# on every way out. The timings on a shared machine are noisy: compare ratios from one run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

runs=3
test_runs=1
do_serve=1
do_tests=1
while [ $# -gt 0 ]; do
  case "$1" in
    -n) runs="$2"; shift 2 ;;
    --tests) test_runs="$2"; shift 2 ;;
    --no-serve) do_serve=0; shift ;;
    --no-tests) do_tests=0; shift ;;
    *) echo "usage: scripts/bench.sh [-n RUNS] [--tests RUNS] [--no-serve] [--no-tests]" >&2; exit 2 ;;
  esac
done

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
fmt() { printf '%.2f' "$1"; }

# The commands the book runs: every `<!-- cmdrun -0 cargo run -q --bin NAME -- ARGS -->`, with
# `cargo run -q --bin NAME --` replaced by the built binary (mdbook-cmdrun runs each with sh -c).
mapfile -t direct < <(grep -rhoE '<!--[ ]*cmdrun -0 cargo run -q --bin [a-z0-9-]+( -- [^>]*)?-->' book \
  | sed -E "s|<!--[ ]*cmdrun -0 cargo run -q --bin ([a-z0-9-]+)( -- )?(.*)-->|$root/target/debug/\\1 \\3|")
echo "bench: ${#direct[@]} directives, $runs paired runs, tree $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (modified)'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

cargo build -q --bins
scripts/book.sh build >/dev/null 2>&1   # warm: tools installed, programs built, caches filled

build_times=()
direct_times=()
for i in $(seq "$runs"); do
  t=$(now)
  scripts/book.sh build >/dev/null 2>&1
  build_times+=("$(since "$t")")
  t=$(now)
  for command in "${direct[@]}"; do
    (cd book && sh -c "$command" >/dev/null 2>&1)
  done
  direct_times+=("$(since "$t")")
  echo "  run $i: book build $(fmt "${build_times[-1]}") s, programs directly $(fmt "${direct_times[-1]}") s"
done
build=$(printf '%s\n' "${build_times[@]}" | median)
programs=$(printf '%s\n' "${direct_times[@]}" | median)
build_ratio=$(echo "$build / $programs" | bc -l)

serve_result="not measured"
if [ "$do_serve" = 1 ]; then
  # The edit: the first plain section title of the shared-mappings chapter (override with
  # BENCH_EDIT=path/to/file.rs).
  source_file="${BENCH_EDIT:-chapters-src/shared_mappings/compare_shared_with_private.rs}"
  title=$(grep -oE 'section\("[A-Za-z0-9 ,:()/._?;-]{8,}"\)' "$source_file" | head -1 | sed -E 's/section\("(.*)"\)/\1/')
  [ -n "$title" ] || { echo "no plain section(\"...\") title in $source_file" >&2; exit 1; }
  bin_dir=$(basename "$(dirname "$source_file")")
  page="${bin_dir//_/-}.html"
  port=$((20000 + RANDOM % 20000))
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((20000 + RANDOM % 20000)); done
  log="$root/target/bench-serve.log"
  backup=$(mktemp)
  cp -p "$source_file" "$backup"
  serve_pid=""
  cleanup() {
    cmp -s "$backup" "$source_file" || cp "$backup" "$source_file"
    rm -f "$backup"
    if [ -n "$serve_pid" ]; then kill -- "-$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  }
  trap cleanup EXIT INT TERM
  setsid scripts/book.sh serve -n 127.0.0.1 -p "$port" >"$log" 2>&1 &
  serve_pid=$!
  # Waits until the page holds `== TEXT` (at most $2 seconds); prints the seconds it took.
  wait_for() {
    local text="== $1" limit="$2" t
    t=$(now)
    while ! curl -sf "http://127.0.0.1:$port/$page" 2>/dev/null | grep -qxF -- "$text"; do
      if [ "$(echo "$(since "$t") > $limit" | bc)" = 1 ]; then
        echo "timeout: $page did not show \"$text\" within $limit s; see $log" >&2
        return 1
      fi
      sleep 0.1
    done
    since "$t"
  }
  first=$(wait_for "$title" 600)
  echo "  serve: first page in $(fmt "$first") s; editing \"$title\" in $source_file"
  serve_times=()
  for i in $(seq "$runs"); do
    edited="$title, bench edit $i"
    sed -i "s|section(\"$title\")|section(\"$edited\")|" "$source_file"
    took=$(wait_for "$edited" 120)
    serve_times+=("$took")
    cp "$backup" "$source_file"
    back=$(wait_for "$title" 120)
    echo "  edit $i: new output on the page after $(fmt "$took") s (the revert after $(fmt "$back") s)"
  done
  cleanup
  trap - EXIT INT TERM
  serve_result=$(printf '%s\n' "${serve_times[@]}" | median)
fi

tests_result="not measured"
if [ "$do_tests" = 1 ]; then
  cargo test -q --no-run 2>/dev/null
  test_times=()
  for i in $(seq "$test_runs"); do
    t=$(now)
    if cargo test -q >"$root/target/bench-test.log" 2>&1; then status=passed; else status="FAILED (see target/bench-test.log)"; fi
    test_times+=("$(since "$t")")
    echo "  cargo test $i: $(fmt "${test_times[-1]}") s, $status"
  done
  tests_result=$(printf '%s\n' "${test_times[@]}" | median)
fi

echo
echo "== medians                                          figure     goal   ratio to goal"
printf '%-50s %6s s\n' "programs run directly" "$(fmt "$programs")"
printf '%-50s %6s s\n' "whole-book build (scripts/book.sh build)" "$(fmt "$build")"
printf '%-50s %6sx   1.5x   %s\n' "build / programs" "$(fmt "$build_ratio")" "$(fmt "$(echo "$build_ratio / 1.5" | bc -l)")"
if [ "$serve_result" != "not measured" ]; then
  printf '%-50s %6s s     5 s   %s\n' "serve: edit to page" "$(fmt "$serve_result")" "$(fmt "$(echo "$serve_result / 5" | bc -l)")"
else
  printf '%-50s %s\n' "serve: edit to page" "$serve_result"
fi
if [ "$tests_result" != "not measured" ]; then
  printf '%-50s %6s s    90 s   %s\n' "warm cargo test" "$(fmt "$tests_result")" "$(fmt "$(echo "$tests_result / 90" | bc -l)")"
else
  printf '%-50s %s\n' "warm cargo test" "$tests_result"
fi

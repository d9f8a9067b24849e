#!/usr/bin/env bash
# The appendix's spin round trip next to a C reference, measured in turn in one run:
#
#   Rust: `ipc-bench latency --transport spin --placement two-cores` (the build the book runs), its
#         median round trip, timed 16 at a time;
#   C:    scripts/spin_pingpong.c (gcc -O2), a ping-pong on one shared cache line on the same two
#         CPUs, its median timed 16 at a time (as the Rust), timed one by one (a clock read around
#         every round trip), and the mean of one batch.
#
#   scripts/spin-vs-c.sh [-n ROUNDS]
#
# Each round runs the Rust program, then the C one, and gives their ratio (Rust / C, both timed 16
# at a time); the summary gives the median of each figure and of the ratios over the rounds. The
# machine's other work moves every figure, and in a virtual machine so does where the host puts the
# two virtual CPUs (two cores that share a cache or not): compare the figures of one round, not
# absolute times. Needs gcc for the C side; says
# so and prints the Rust figures alone without it. Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=5
while [ $# -gt 0 ]; do
  case "$1" in
    -n) rounds="${2:?-n needs a number of rounds}"; shift 2 ;;
    *) echo "usage: scripts/spin-vs-c.sh [-n ROUNDS]" >&2; exit 2 ;;
  esac
done
case "$rounds" in
  '' | *[!0-9]* | 0) echo "spin-vs-c: -n $rounds: a positive number of rounds" >&2; exit 2 ;;
esac

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# "0-3,8" -> 0 1 2 3 8
expand() { tr ',' '\n' <<<"$1" | awk -F- '{ for (c = $1; c <= ($2 == "" ? $1 : $2); c++) print c }'; }

# The CPUs ipc-bench pins to (pair.rs, cpu_pair): the first allowed CPU, and the first allowed CPU
# of another core (not an SMT sibling of the first), else the second allowed CPU.
mapfile -t allowed < <(expand "$(awk '/^Cpus_allowed_list:/ { print $2 }' /proc/self/status)")
if [ "${#allowed[@]}" -lt 2 ]; then
  echo "spin-vs-c: this process may run on CPU ${allowed[0]} only: no two-core round trip to measure" >&2
  exit 1
fi
first=${allowed[0]}
siblings=$(expand "$(cat "/sys/devices/system/cpu/cpu$first/topology/thread_siblings_list" 2>/dev/null || echo "$first")")
second=${allowed[1]}
for c in "${allowed[@]:1}"; do
  if ! grep -qx "$c" <<<"$siblings"; then second=$c; break; fi
done

cargo build -q --bin ipc-bench
rust=target/debug/ipc-bench
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
c_program=""
if command -v gcc >/dev/null; then
  gcc -O2 -Wall -o "$dir/spin_pingpong" scripts/spin_pingpong.c
  c_program="$dir/spin_pingpong"
  c_note="C: gcc -O2 scripts/spin_pingpong.c, one cache line"
else
  c_note="C: not measured (no gcc on PATH)"
fi
echo "spin-vs-c: $rounds rounds, CPUs $first and $second, tree $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (modified)'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  Rust: $rust latency --transport spin --placement two-cores; $c_note"

# A time as ipc-bench prints it ("68 ns", "1.2 µs", "8.0 ms"), in ns.
to_ns() { awk -v v="$1" -v u="$2" 'BEGIN { print v * (u == "µs" ? 1e3 : u == "ms" ? 1e6 : 1) }'; }

rust_ns=() c_batch16=() c_each=() c_whole=() ratios=()
for i in $(seq "$rounds"); do
  line=$("$rust" latency --transport spin --placement two-cores | grep -E '^shm \+ spin +two cores ')
  read -r value unit < <(sed -E 's/^shm \+ spin +two cores +([0-9.]+) ([^,]+),.*/\1 \2/' <<<"$line")
  rust_ns+=("$(to_ns "$value" "$unit")")
  report="  round $i: Rust ${rust_ns[-1]} ns"
  if [ -n "$c_program" ]; then
    # "C spin, one-line, CPUs 0 and 1: one by one 120 ns, 16 at a time 64 ns, one batch 62 ns"
    read -r each batch16 whole < <("$c_program" 500 one-line "$first" "$second" |
      sed -E 's/.*one by one ([0-9]+) ns, 16 at a time ([0-9]+) ns, one batch ([0-9]+) ns/\1 \2 \3/')
    c_each+=("$each") c_batch16+=("$batch16") c_whole+=("$whole")
    ratios+=("$(awk -v r="${rust_ns[-1]}" -v c="$batch16" 'BEGIN { printf "%.2f", r / c }')")
    report+=", C $batch16 ns, Rust / C ${ratios[-1]} (C one by one $each ns, as one batch $whole ns)"
  fi
  echo "$report"
done

rust_median=$(printf '%s\n' "${rust_ns[@]}" | median)
if [ -n "$c_program" ]; then
  c_median=$(printf '%s\n' "${c_batch16[@]}" | median)
  echo "spin round trip, two cores, median of $rounds rounds: Rust $rust_median ns, C $c_median ns, Rust / C $(printf '%s\n' "${ratios[@]}" | median)"
  echo "  C timed one by one (a clock read around each round trip) $(printf '%s\n' "${c_each[@]}" | median) ns; C as one batch $(printf '%s\n' "${c_whole[@]}" | median) ns"
else
  echo "spin round trip, two cores, median of $rounds rounds: Rust $rust_median ns (no C reference: gcc not found)"
fi

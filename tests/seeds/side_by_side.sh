#!/bin/sh
# The seeds' programs, in C of the seeds' own shape, run next to the book's Rust ports on this
# machine: what the book says about "the seed's program" is checked here. Needs cc; run from the
# project root: tests/seeds/side_by_side.sh. Leaves nothing behind (its own names, removed).
set -u
dir=$(mktemp -d)
trap 'rm -rf "$dir"; rm -f /dev/shm/vmbook-seedc-*' EXIT INT TERM
cd "$(dirname "$0")/../.."
cc -O2 -Wall -o "$dir/seed001" tests/seeds/seed_001.c || exit 1

echo "== seed 001: the numbers pipeline (data/numbers.txt and the seed's empty terminator line)"
for i in 1 2 3; do
    (cat book/data/numbers.txt; echo) | SEED_SHM_NAME=/vmbook-seedc-001 "$dir/seed001" "$dir/out"
done
for i in 1 2 3; do
    target/debug/posix-shm pipeline --input book/data/numbers.txt | grep -E '^child|^finding'
done
echo "== seed 001 at the end of input without the empty line (killed after 2 s)"
(timeout 2 sh -c "cat book/data/numbers.txt | SEED_SHM_NAME=/vmbook-seedc-001 $dir/seed001 $dir/out" 2>&1 |
    tail -1)
echo "  (6 lines of input)"
echo "== seed 001 on one line of 700 numbers: the sums it writes"
(python3 -c "print('1 ' * 700)"; echo) | SEED_SHM_NAME=/vmbook-seedc-001 "$dir/seed001" "$dir/out" >/dev/null
cat "$dir/out"

if command -v valgrind >/dev/null; then
    cc -O0 -g -o "$dir/seed000" tests/seeds/seed_000.c || exit 1
    echo "== seed 000 under valgrind --leak-check=full: one summary per process, nothing about the page"
    valgrind --leak-check=full "$dir/seed000" 2>&1 | grep -E 'HEAP SUMMARY|in use at exit|definitely lost|All heap'
    echo "== the book's port (cleanup valgrind)"
    target/debug/cleanup valgrind | grep -E "LEAK SUMMARY|^finding"
else
    echo "== seed 000: not run, no valgrind on PATH"
fi

cc -O2 -Wall -o "$dir/seed003" tests/seeds/seed_003.c || exit 1
echo "== seed 003's fork example, sleeps scaled to 300 ms (NAP_MS): undisturbed"
NAP_MS=300 "$dir/seed003"
echo "== the same, with the parent stopped (SIGSTOP) for 1.2 s before its write"
NAP_MS=300 "$dir/seed003" &
pid=$!
sleep 0.45
kill -STOP "$pid"
sleep 1.2
kill -CONT "$pid"
wait "$pid"

echo "== seed 001's flag loops (plain int busy loop, plain int with usleep, volatile busy loop)"
for cc_name in cc clang; do
    command -v "$cc_name" >/dev/null || { echo "($cc_name: not installed)"; continue; }
    for level in 0 1 2; do
        "$cc_name" -O$level -w -o "$dir/flag" tests/seeds/seed_001_flag.c || exit 1
        for how in busy usleep volatile; do
            printf '%s -O%s: ' "$cc_name" "$level"
            "$dir/flag" "$how"
        done
    done
done

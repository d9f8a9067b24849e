#!/usr/bin/env bash
# Runs every program the book embeds, and its snapshot test, under every configuration this machine
# can produce, and prints one row per configuration: the findings tally and the snapshot tests.
#
#   scripts/matrix.sh              check: 0 refuted, 0 failed, every snapshot test green
#   scripts/matrix.sh --record     also write NAME@TAGS.snap.new for each output that differs
#                                  (read them, then accept with `cargo insta review`, and add the
#                                  configuration's TAGS to [matrix] verified in tests/environments.toml)
#   scripts/matrix.sh --only NAME  one configuration (reference, no-sys-admin, nobody, one-cpu,
#                                  thp-always, thp-never, no-valgrind, no-aslr, swap)
#
# The configurations (each detected again by the tests themselves, tests/support/environment.rs):
#   reference     as the script runs
#   no-sys-admin  root without CAP_SYS_ADMIN (a container's root): frame numbers hidden
#   nobody        an ordinary user (root only: setpriv to nobody), on a copy of the tree that nobody
#                 owns (VMBOOK_ROOT), as a reader runs their own checkout
#   one-cpu       taskset -c 0
#   thp-always    /sys/kernel/mm/transparent_hugepage/enabled = always   (root; restored after)
#   thp-never     ... = never                                             (root; restored after)
#   no-valgrind   PATH without valgrind
#   no-aslr       setarch -R: this process and its children unrandomized
#   swap          a small zram swap device for the run (root, scripts/zram-swap.sh; removed after)
#
# The snapshot test binary runs in place; with --record, new variants are written beside the
# snapshots as NAME@TAGS.snap.new.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

record=false
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --record) record=true ;;
    --only) only="$2"; shift ;;
    *) echo "usage: scripts/matrix.sh [--record] [--only CONFIGURATION]" >&2; exit 2 ;;
  esac
  shift
done

echo "building the chapter programs and the snapshot test" >&2
cargo build --quiet --bins
test_bin=$(cargo test --test book_outputs --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -n 1)
[ -x "$test_bin" ] || test_bin="$root/$test_bin"
[ -x "$test_bin" ] || { echo "matrix: cannot find the book_outputs test binary" >&2; exit 1; }

stage=$(mktemp -d /tmp/vmbook-matrix.XXXXXX)
chmod 755 "$stage"   # the nobody configuration reads its copy of the tree in here
thp=/sys/kernel/mm/transparent_hugepage/enabled
thp_before=$(sed -n 's/.*\[\(.*\)\].*/\1/p' "$thp" 2>/dev/null || true)
swap_up=false
restore() {
  if [ -n "$thp_before" ] && [ -w "$thp" ]; then echo "$thp_before" > "$thp" || true; fi
  if $swap_up; then scripts/zram-swap.sh down >/dev/null || true; fi
  rm -rf "$stage"
}
trap restore EXIT
trap 'exit 130' INT TERM HUP

mkdir -p "$stage"

# A PATH without valgrind: every program of /usr/bin and /bin but valgrind's.
novalgrind="$stage/path-without-valgrind"
mkdir -p "$novalgrind"
for dir in /usr/local/bin /usr/bin /bin; do
  for f in "$dir"/*; do
    name=$(basename "$f")
    case "$name" in valgrind*|vgdb) continue ;; esac
    [ -e "$novalgrind/$name" ] || ln -s "$f" "$novalgrind/$name"
  done
done
chmod -R a+rX "$novalgrind"

is_root() { [ "$(id -u)" = 0 ]; }
arch=$(uname -m)

# Prints why CONFIGURATION cannot be produced here, or nothing.
unavailable() {
  case "$1" in
    reference|one-cpu) ;;
    no-sys-admin) is_root || echo "needs root" ;;
    nobody) is_root || echo "needs root (to become nobody)"
            command -v setpriv >/dev/null || echo "no setpriv"
            setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$test_bin" \
              || echo "nobody cannot run $test_bin (a directory above it is closed)" ;;
    thp-always|thp-never) [ -w "$thp" ] || echo "$thp is not writable" ;;
    no-valgrind) ;;
    no-aslr) command -v setarch >/dev/null || echo "no setarch"
             setarch "$arch" -R true 2>/dev/null || echo "setarch -R is refused here" ;;
    swap) is_root || echo "needs root"
          [ -x scripts/zram-swap.sh ] || echo "no scripts/zram-swap.sh"
          [ "$(wc -l < /proc/swaps)" -le 1 ] || echo "swap is already active" ;;
  esac
}

# Runs the snapshot test under CONFIGURATION; its findings go to $log.
run_config() {
  local config=$1 log=$2
  local envs=(env "VMBOOK_FINDINGS_LOG=$log" "INSTA_UPDATE=no" "CI=${CI:-}")
  if $record; then
    envs=(env "VMBOOK_FINDINGS_LOG=$log" "VMBOOK_RECORD_VARIANTS=1"
          "INSTA_UPDATE=new" "INSTA_FORCE_PASS=1" "CI=")
  fi
  local test=("$test_bin" --test-threads 1)
  case "$config" in
    reference)    "${envs[@]}" "${test[@]}" ;;
    no-sys-admin) setpriv --bounding-set -sys_admin --inh-caps -sys_admin "${envs[@]}" "${test[@]}" ;;
    one-cpu)      taskset -c "$(taskset -pc $$ | sed 's/.*: *//; s/[,-].*//')" "${envs[@]}" "${test[@]}" ;;
    thp-always|thp-never)
                  echo "${config#thp-}" > "$thp"
                  local status=0
                  "${envs[@]}" "${test[@]}" || status=$?
                  echo "$thp_before" > "$thp"
                  return $status ;;
    no-valgrind)  "${envs[@]}" "PATH=$novalgrind" "${test[@]}" ;;
    no-aslr)      setarch "$arch" -R "${envs[@]}" "${test[@]}" ;;
    nobody)       # A copy of the tracked files (as they are in the work tree) that nobody owns,
                  # as a reader owns their checkout; the binaries stay where cargo built them.
                  local tree="$stage/tree"
                  rm -rf "$tree"; mkdir -p "$tree"
                  git ls-files -z | tar --null -cf - -T - | tar -xf - -C "$tree"
                  chown -R nobody:nogroup "$tree"
                  local status=0
                  setpriv --reuid=nobody --regid=nogroup --clear-groups \
                    "${envs[@]}" "VMBOOK_ROOT=$tree" "HOME=$tree" "${test[@]}" || status=$?
                  if $record; then
                    for new in "$tree"/tests/snapshots/*@*.snap.new; do
                      [ -e "$new" ] && cp "$new" tests/snapshots/
                    done
                  fi
                  return $status ;;
    swap)         scripts/zram-swap.sh up >/dev/null && swap_up=true
                  local status=0
                  "${envs[@]}" "${test[@]}" || status=$?
                  scripts/zram-swap.sh down >/dev/null && swap_up=false
                  return $status ;;
  esac
}

configs=(reference no-sys-admin nobody one-cpu thp-always thp-never no-valgrind no-aslr swap)
[ -n "$only" ] && configs=("$only")

# Global settings (THP mode, swap) are changed only under this lock, so that two runs on one
# machine never measure each other's configuration.
exec 9>/tmp/vmbook-global.lock
flock 9 2>/dev/null || true

failures=0
printf '\n%-13s | %-9s | %-7s | %-11s | %-22s | %s\n' configuration confirmed refuted "not checked" "snapshot tests" "compared"
printf -- '--------------|-----------|---------|-------------|------------------------|---------\n'
for config in "${configs[@]}"; do
  why=$(unavailable "$config")
  if [ -n "$why" ]; then
    printf '%-13s | %s\n' "$config" "not run: $(echo $why)"
    continue
  fi
  log="$stage/findings-$config.log"; out="$stage/test-$config.out"
  touch "$log" "$out"; chmod a+rw "$log" "$out"
  start=$(date +%s)
  status=0
  run_config "$config" "$log" > "$out" 2>&1 || status=$?
  seconds=$(( $(date +%s) - start ))
  confirmed=$(grep -c $'\tconfirmed\t' "$log" || true)
  refuted=$(grep -c $'\tREFUTED\t' "$log" || true)
  unchecked=$(grep -c $'\tnot checked\t' "$log" || true)
  result=$(grep -E '^test result:' "$out" | tail -n 1 | sed 's/^test result: //; s/; finished in.*//' | cut -d';' -f1-2)
  only_findings=$(grep -c 'findings checked, output not compared' "$out" || true)
  printf '%-13s | %-9s | %-7s | %-11s | %-22s | %s\n' "$config" "$confirmed" "$refuted" "$unchecked" \
    "${result:-no result}" "exact except $only_findings (${seconds}s)"
  if [ "$status" != 0 ] || [ "$refuted" != 0 ]; then
    failures=$((failures + 1))
    { grep -E '^(test .* FAILED|---- |  REFUTED|.*differs from its snapshot)' "$out" || true; } | head -n 20 | sed 's/^/    /'
    { grep -E $'\tREFUTED\t' "$log" || true; } | sed 's/^/    REFUTED: /' | head -n 10
  fi
  if $record; then
    for new in tests/snapshots/*@*.snap.new; do
      [ -e "$new" ] && echo "    recorded $(basename "$new")"
    done
  fi
done

if [ "$failures" != 0 ]; then
  echo "matrix: $failures configuration(s) failed" >&2
  exit 1
fi
echo "matrix: every configuration that could run passed"

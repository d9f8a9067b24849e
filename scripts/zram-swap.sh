#!/bin/sh
# A small zram swap device for the chapter "Memory pressure", so that its swap findings can be
# checked on a machine that has no swap. Root only. Changes a global setting: callers hold
# `flock /tmp/vmbook-global.lock` around up ... down, and call `down` on every path (trap).
#
#   scripts/zram-swap.sh up      # zram0 as swap (ZRAM_SWAP_SIZE, default and at most 256M)
#   scripts/zram-swap.sh down    # swapoff and reset zram0, only if `up` set it up
#   scripts/zram-swap.sh status  # what /proc/swaps and zram0 hold now
#
# Idempotent: `up` twice leaves one device, `down` twice is harmless. `up` refuses (exit 1) when
# any swap is already active or zram0 is in use by someone else; `down` touches zram0 only if the
# marker file written by `up` is there, so it never removes a swap it did not create.
set -eu

dev=/dev/zram0
sys=/sys/block/zram0
marker=/run/vmbook-zram-swap
size=${ZRAM_SWAP_SIZE:-256M}

say() { echo "zram-swap: $*" >&2; }

active_swaps() { tail -n +2 /proc/swaps; }

bytes_of() {
    # 256M -> 268435456; plain numbers are bytes.
    numfmt --from=iec "$1"
}

up() {
    [ "$(id -u)" = 0 ] || { say "must run as root"; exit 1; }
    if [ -e "$marker" ] && active_swaps | grep -q "^$dev "; then
        say "already up ($dev)"; return 0
    fi
    if [ -e "$marker" ]; then
        down    # a previous `up` that did not finish, or whose swap was turned off by hand
    fi
    if [ -n "$(active_swaps)" ]; then
        say "refused: swap is already active:"; active_swaps >&2; exit 1
    fi
    if [ "$(bytes_of "$size")" -gt 268435456 ]; then
        say "refused: ZRAM_SWAP_SIZE=$size is more than 256M"; exit 1
    fi
    if [ ! -e "$sys" ]; then
        modprobe zram num_devices=1 || { say "no zram device and modprobe zram failed"; exit 1; }
        for _ in 1 2 3 4 5 6 7 8 9 10; do [ -e "$sys" ] && break; sleep 0.1; done
    fi
    [ -e "$sys" ] || { say "no $sys"; exit 1; }
    if [ "$(cat "$sys/disksize")" != 0 ] || grep -q "^$dev " /proc/mounts; then
        say "refused: $dev is in use (disksize $(cat "$sys/disksize"))"; exit 1
    fi
    : > "$marker"
    # From here on a failure undoes what was done.
    trap 'say "failed; undoing"; down' EXIT
    echo "$size" > "$sys/disksize"
    mkswap "$dev" > /dev/null
    swapon "$dev"
    trap - EXIT
    say "up: $dev, $size"
}

down() {
    if [ ! -e "$marker" ]; then
        say "nothing to do (no swap set up by this script)"; return 0
    fi
    if active_swaps | grep -q "^$dev "; then
        swapoff "$dev"
    fi
    if [ -e "$sys/reset" ]; then
        echo 1 > "$sys/reset"
    fi
    rm -f "$marker"
    say "down: $dev reset"
}

status() {
    echo "/proc/swaps:"; cat /proc/swaps
    [ -e "$sys" ] && echo "$sys/disksize: $(cat "$sys/disksize")"
    [ -e "$marker" ] && echo "set up by this script ($marker)"
    return 0
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac

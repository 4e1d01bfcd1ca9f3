#!/usr/bin/env bash
# Benchmark of `sidus replicate` between two loop-backed btrfs stores on this
# host (the remote reached by --command), side by side with the raw
# `btrfs send -p PARENT SNAP | btrfs receive DIR` of the same snapshots into
# the same receiving file system. Root only.
#
# A tree of SIZE_MB (default 1024) in 1 MiB files is replicated whole once;
# then, RUNS times (default 5), 1% of its files are rewritten, snapshotted, and
# replicated incrementally by sidus and by the raw pipe, alternately. Prints
# the mean of each, the ratio (target: within 1.3x) and the full replication
# for comparison (incremental time must follow the change, not the tree).
# PERCENT (default 1) changes the share of files rewritten per round.
# Usage: bench/replicate.sh [SIZE_MB [RUNS [PERCENT]]]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-1024}
runs=${2:-5}
percent=${3:-1}
cargo build --release --quiet
S=${CARGO_TARGET_DIR:-$PWD/target}/release/sidus
work=$(mktemp -d /var/tmp/sidus-bench-replicate.XXXXXX)
cleanup() {
    for s in a b; do
        umount "$work/$s" 2>/dev/null || umount -l "$work/$s" 2>/dev/null || true
    done
    mountpoint -q "$work/a" || mountpoint -q "$work/b" || rm -rf --one-file-system "$work"
}
trap cleanup EXIT
gb=$(((size_mb * 3 / 1024) + 2))G
for s in a b; do
    $S --config "$work/$s.toml" init --loop "$work/$s.img" --path "$work/$s" --size "$gb" >/dev/null
done
A() { $S --config "$work/a.toml" "$@"; }
A remote add b --command "$S --config $work/b.toml" >/dev/null
A create t >/dev/null
tree=$work/a/trees/t
mkdir -p "$tree/data"
# Incompressible content, written once and copied (urandom is slow).
head -c $((1 << 20)) /dev/urandom >"$work/chunk"
for ((i = 0; i < size_mb; i++)); do
    printf '%08d' "$i" | cat - "$work/chunk" >"$tree/data/f$i"
done
sync
prev=$(A snapshot t -m base)
raw=$work/b/raw
mkdir -p "$raw"
now() { date +%s%N; }
t0=$(now)
A replicate t >/dev/null
t1=$(now)
btrfs send -q "$work/a/snapshots/t/$prev" | btrfs receive -q "$raw"
t2=$(now)
full_sid=$(((t1 - t0) / 1000)) full_raw=$(((t2 - t1) / 1000))

fmt() { awk -v u="$1" 'BEGIN { printf "%.1f ms", u / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
changed=$((size_mb * percent / 100))
sid=0 rawt=0
for ((r = 0; r < runs; r++)); do
    # 1% of the files get new content (a new random chunk each round).
    head -c $((1 << 20)) /dev/urandom >"$work/chunk"
    for ((i = 0; i < changed; i++)); do
        f=$(((r * 37 + i * 101) % size_mb))
        printf '%08d' "$f" | cat - "$work/chunk" >"$tree/data/f$f"
    done
    sync
    cur=$(A snapshot t -m "round $r")
    sync
    raw_one() { btrfs send -q -p "$work/a/snapshots/t/$prev" "$work/a/snapshots/t/$cur" | btrfs receive -q "$raw"; }
    if ((r % 2 == 0)); then
        t0=$(now); A replicate t >/dev/null; t1=$(now); raw_one; t2=$(now)
        sid=$((sid + t1 - t0)) rawt=$((rawt + t2 - t1))
    else
        t0=$(now); raw_one; t1=$(now); A replicate t >/dev/null; t2=$(now)
        rawt=$((rawt + t1 - t0)) sid=$((sid + t2 - t1))
    fi
    prev=$cur
done
sid=$((sid / runs / 1000)) rawt=$((rawt / runs / 1000))
# The replica has what the primary has.
[[ $(A snapshots t --json | md5sum) == $($S --config "$work/b.toml" snapshots t --json | md5sum) ]] ||
    { echo "replica differs from the primary" >&2; exit 1; }
printf 'tree %d MiB, %d MiB (%d%%) changed per round, %d rounds\n' "$size_mb" "$changed" "$percent" "$runs"
printf '%-34s %12s   raw btrfs send -p | btrfs receive %12s   %s\n' \
    "sidus replicate (incremental)" "$(fmt $sid)" "$(fmt $rawt)" "$(ratio $sid $rawt)"
printf '%-34s %12s   raw btrfs send | btrfs receive    %12s   %s\n' \
    "sidus replicate (whole tree)" "$(fmt $full_sid)" "$(fmt $full_raw)" "$(ratio $full_sid $full_raw)"
printf 'incremental / whole: sidus %s, raw %s\n' "$(ratio $sid $full_sid)" "$(ratio $rawt $full_raw)"

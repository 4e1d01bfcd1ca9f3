#!/usr/bin/env bash
# Benchmark of `sidus replicate` between two loop-backed btrfs stores on this
# host (the remote reached by --command), side by side with the raw
# `btrfs send -p PARENT SNAP | btrfs receive DIR` of the same snapshots into
# the same receiving file system. Root only.
#
# A tree of SIZE_MB (default 1024) in 1 MiB files is replicated whole once;
# then, RUNS times (default 5), 1% of its files are rewritten, snapshotted, and
# replicated incrementally by sidus and by the raw pipe, alternately (which
# goes first swaps every round; everything is synced before each). Each
# snapshot's manifest is kept on the primary first, untimed, as `sidus
# publish` does, so the replica checks what it receives against it: the path
# users take. Prints the median of each, the ratio (target: within 1.3x) and
# the full replication for comparison (incremental time must follow the
# change, not the tree). PERCENT (default 1) changes the share of files
# rewritten per round; MANIFESTS=0 leaves the manifests out (no check).
# Usage: bench/replicate.sh [SIZE_MB [RUNS [PERCENT]]]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-1024}
runs=${2:-5}
percent=${3:-1}
manifests=${MANIFESTS:-1}
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
# The manifest a publish would keep (what the replica checks against).
snap() {
    local id
    id=$(A snapshot t -m "$1")
    ((manifests == 0)) || A manifest "t@$id" >/dev/null
    sync
    echo "$id"
}
prev=$(snap base)
raw=$work/b/raw
mkdir -p "$raw"
now() { date +%s%N; }
t0=$(now)
A replicate t >/dev/null
t1=$(now)
sync
t2=$(now)
btrfs send -q "$work/a/snapshots/t/$prev" | btrfs receive -q "$raw"
t3=$(now)
full_sid=$(((t1 - t0) / 1000)) full_raw=$(((t3 - t2) / 1000))

fmt() { awk -v u="$1" 'BEGIN { printf "%.1f ms", u / 1000 }'; }
# The median of the arguments (microseconds): a round slowed by another
# program on the host does not move it.
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
changed=$((size_mb * percent / 100))
sids=() raws=()
for ((r = 0; r < runs; r++)); do
    # 1% of the files get new content (a new random chunk each round).
    head -c $((1 << 20)) /dev/urandom >"$work/chunk"
    for ((i = 0; i < changed; i++)); do
        f=$(((r * 37 + i * 101) % size_mb))
        printf '%08d' "$f" | cat - "$work/chunk" >"$tree/data/f$f"
    done
    sync
    cur=$(snap "round $r")
    raw_one() { btrfs send -q -p "$work/a/snapshots/t/$prev" "$work/a/snapshots/t/$cur" | btrfs receive -q "$raw"; }
    sid_one() { A replicate t >/dev/null; }
    # Each timed alone: the other's writes are synced before it starts.
    timed() { local t0 t1; sync; t0=$(now); "$1"; t1=$(now); echo $(((t1 - t0) / 1000)); }
    if ((r % 2 == 0)); then
        s_us=$(timed sid_one) r_us=$(timed raw_one)
    else
        r_us=$(timed raw_one) s_us=$(timed sid_one)
    fi
    sids+=("$s_us") raws+=("$r_us")
    prev=$cur
done
sid=$(median "${sids[@]}") rawt=$(median "${raws[@]}")
# The replica has what the primary has.
[[ $(A snapshots t --json | md5sum) == $($S --config "$work/b.toml" snapshots t --json | md5sum) ]] ||
    { echo "replica differs from the primary" >&2; exit 1; }
printf 'tree %d MiB, %d MiB (%d%%) changed per round, %d rounds, manifests %s, load %s\n' \
    "$size_mb" "$changed" "$percent" "$runs" "$( ((manifests)) && echo kept || echo none)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'rounds (ms), sidus: %s\n' "$(for v in "${sids[@]}"; do printf '%d ' $((v / 1000)); done)"
printf 'rounds (ms), raw:   %s\n' "$(for v in "${raws[@]}"; do printf '%d ' $((v / 1000)); done)"
printf '%-34s %12s   raw btrfs send -p | btrfs receive %12s   %s\n' \
    "sidus replicate (incremental)" "$(fmt "$sid")" "$(fmt $rawt)" "$(ratio $sid $rawt)"
printf '%-34s %12s   raw btrfs send | btrfs receive    %12s   %s\n' \
    "sidus replicate (whole tree)" "$(fmt $full_sid)" "$(fmt $full_raw)" "$(ratio $full_sid $full_raw)"
printf 'incremental / whole: sidus %s, raw %s\n' "$(ratio $sid $full_sid)" "$(ratio $rawt $full_raw)"
# Each round's two runs follow each other, under the same load: the median of
# their ratios is the figure least moved by other programs on the host.
pairs=()
for ((r = 0; r < runs; r++)); do pairs+=("$((sids[r] * 1000 / raws[r]))"); done
printf 'median of the paired ratios (sidus / raw): %s\n' "$(awk -v p="$(median "${pairs[@]}")" 'BEGIN { printf "%.2fx", p / 1000 }')"

#!/usr/bin/env bash
# Benchmarks of the core commands on a loop-backed btrfs store, side by side
# with the raw btrfs commands they wrap. Root only. Prints ratios; targets:
# snapshot within 1.3x of raw (with its intent record and fsynced journal
# entry; the cost of each durable write is printed), clone within 1.5x,
# listing 10,000 snapshots < 0.5 s and < 30 MB peak memory.
# Usage: bench/core.sh [SNAPSHOTS_FOR_LISTING...] (default 1000 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("${@:-1000 10000}")
[[ $# -eq 0 ]] && counts=(1000 10000)
cargo build --release --quiet
S=${CARGO_TARGET_DIR:-$PWD/target}/release/sidus
work=$(mktemp -d /var/tmp/sidus-bench.XXXXXX)
export SIDUS_CONFIG=$work/sidus.toml
# Never rm -rf a store that is still mounted: that would empty its trees.
cleanup() {
    umount "$work/store" 2>/dev/null || umount -l "$work/store" 2>/dev/null || true
    mountpoint -q "$work/store" || rm -rf --one-file-system "$work"
}
trap cleanup EXIT
$S init --loop "$work/store.img" --path "$work/store" --size 8G >/dev/null
mkdir -p "$work/src" && cp -a /usr/share/doc "$work/src/" 2>/dev/null || true
$S create t --from-dir "$work/src" >/dev/null
trees=$work/store/trees snaps=$work/store/snapshots/t

ms() { # mean wall time in ms of running "$@" N times (N from $runs)
    local start end
    start=$(date +%s%N)
    for ((i = 0; i < runs; i++)); do "$@" >/dev/null; done
    end=$(date +%s%N)
    echo $(((end - start) / runs / 1000))
}
# pair A B: sets sid and raw to the mean wall times in us of A and of B, run
# alternately $runs times each, so neither pays alone for what the store was
# doing before (the first snapshots after `sidus create` commit the whole
# copied tree). Not in a subshell: the raw commands count their names up in n.
pair() {
    local a=0 b=0 t0 t1 t2
    for ((i = 0; i < runs; i++)); do
        t0=$(date +%s%N); $1 >/dev/null
        t1=$(date +%s%N); $2 >/dev/null
        t2=$(date +%s%N)
        a=$((a + t1 - t0)) b=$((b + t2 - t1))
    done
    sid=$((a / runs / 1000)) raw=$((b / runs / 1000))
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
fmt() { awk -v u="$1" 'BEGIN { printf "%.1f ms", u / 1000 }'; }

runs=30
n=0
# Raw copies go inside the store: a snapshot must be on the same btrfs.
rawdir=$work/store/raw
mkdir -p "$rawdir"
raw_snap() { btrfs subvolume snapshot -r "$trees/t" "$rawdir/s.$((n++))"; }
sidus_snap() { $S snapshot t; }
sync
pair sidus_snap raw_snap
printf '%-44s %10s   raw btrfs subvolume snapshot -r %10s   %s\n' "sidus snapshot" "$(fmt $sid)" "$(fmt $raw)" "$(ratio $sid $raw)"

# What the durable writes of one change cost on this store's file system.
cargo bench --quiet --bench durability -- "$work/store/.sidus/bench" 2>/dev/null | grep durability
rm -rf "$work/store/.sidus/bench"

id=$($S snapshot t)
c=0
sidus_clone() { $S clone "t@$id" "c$((c++))"; }
raw_clone() { btrfs subvolume snapshot "$snaps/$id" "$rawdir/c.$((n++))"; }
pair sidus_clone raw_clone
printf '%-44s %10s   raw btrfs subvolume snapshot    %10s   %s\n' "sidus clone" "$(fmt $sid)" "$(fmt $raw)" "$(ratio $sid $raw)"

have=$($S snapshots t --json | grep -c '"id"')
for want in "${counts[@]}"; do
    echo "(taking snapshots up to $want with sidus snapshot...)" >&2
    # The path users take: real snapshots, with the metadata sidus writes.
    for ((k = have; k < want; k++)); do $S snapshot t -m bench >/dev/null; done
    have=$want
    runs=5
    sid=$(ms $S snapshots t --json)
    raw=$(ms btrfs subvolume list "$work/store")
    mem=$( { /usr/bin/time -f %M $S snapshots t --json >/dev/null; } 2>&1 )
    printf '%-44s %10s   raw btrfs subvolume list        %10s   %s   peak %s MB\n' \
        "sidus snapshots --json ($want snapshots)" "$(fmt $sid)" "$(fmt $raw)" "$(ratio $sid $raw)" "$((mem / 1024))"
    runs=10
    sync
    pair sidus_snap raw_snap
    have=$((have + runs))
    printf '%-44s %10s   raw btrfs subvolume snapshot -r %10s   %s\n' \
        "sidus snapshot (with $want snapshots)" "$(fmt $sid)" "$(fmt $raw)" "$(ratio $sid $raw)"
done

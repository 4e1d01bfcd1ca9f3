#!/usr/bin/env bash
# Benchmark of the fleet commands with 1,000 nodes (inventory entries only, no
# real nodes), natively on loop-backed btrfs (root): the store on one loop
# image, the boot root (node and group entries) on another.
#   - `sidus node import` of 1,000 nodes in 10 groups (2,000 node entries +
#     20 group entries written durably), against a shell writing the same
#     2,000 files and one `sync -f` (no temp files, no renames: a floor);
#   - `sidus publish TREE@ID --group G` to a 100-node and to a 1,000-node
#     group (one rename either way), against `cp` + `mv` of one file;
#   - `sidus nodes --json` over 1,000 nodes: wall time and peak memory
#     (/usr/bin/time -f %M).
# Targets: each under 1 s; nodes --json under 30 MB. The host has no nfsd
# (apply_exports = false). Usage: bench/fleet.sh [ROUNDS] (default 3; the
# median of the rounds is printed)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
command -v /usr/bin/time >/dev/null || { echo "bench/fleet.sh needs /usr/bin/time (package time)" >&2; exit 1; }
cargo build --release --quiet
S=${CARGO_TARGET_DIR:-$PWD/target}/release/sidus
work=$(mktemp -d /var/tmp/sidus-bench-fleet.XXXXXX)
export SIDUS_CONFIG=$work/sidus.toml
cleanup() {
    findmnt -rn -o TARGET | grep "^$work/srv/" | sort -r | xargs -r -n1 umount || true
    umount "$work/tftp" 2>/dev/null || true
    umount "$work/store" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
$S init --loop "$work/store.img" --path "$work/store" --size 2G >/dev/null
truncate -s 1G "$work/tftp.img"
mkfs.btrfs -q "$work/tftp.img"
mkdir -p "$work/tftp"
mount -o loop "$work/tftp.img" "$work/tftp"
cat >>"$SIDUS_CONFIG" <<CFG

[publish]
root = "$work/srv"
boot_root = "$work/tftp"
exports_file = "$work/exports.d/sidus.exports"
server = "192.0.2.1"
apply_exports = false
clients = ["192.0.2.0/24"]
CFG
mkdir -p "$work/src/boot" "$work/src/etc"
head -c 1M /dev/urandom >"$work/src/boot/vmlinuz-6.1.0-26-amd64"
head -c 4M /dev/urandom >"$work/src/boot/initrd.img-6.1.0-26-amd64"
$S create t --from-dir "$work/src" >/dev/null
A=$($S snapshot t -m A)
B=$($S snapshot t -m B)
$S publish "t@$A" >/dev/null

csv() { # csv GROUPS: 1,000 nodes dealt over GROUPS groups
    echo "name,mac,ip,group"
    for ((i = 0; i < 1000; i++)); do
        printf 'n%04d,52:54:01:00:%02x:%02x,10.1.%d.%d,g%d\n' $i $((i / 256)) $((i % 256)) $((i / 250)) $((i % 250 + 1)) $((i % $1))
    done
}
csv 10 >"$work/ten.csv"
csv 1 >"$work/one.csv"

ms() { local t0; t0=$(date +%s%N); "$@" >/dev/null; echo $((($(date +%s%N) - t0) / 1000000)); }
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

imp=() pub100=() pub1000=() list=() raw_files=() raw_one=() mem=()
for ((r = 0; r < rounds; r++)); do
    # A fresh inventory each round: remove everyone, then import.
    [[ $r -eq 0 ]] || $S node import "$work/one.csv" --replace >/dev/null
    [[ $r -eq 0 ]] || $S node remove $($S nodes --json | jq -r '.nodes[].name') >/dev/null
    imp+=("$(ms $S node import "$work/ten.csv")")
    pub100+=("$(ms $S publish "t@$([[ $((r % 2)) -eq 0 ]] && echo "$B" || echo "$A")" --group g0)")
    list+=("$(ms $S nodes --json)")
    mem+=("$(/usr/bin/time -f %M $S nodes --json 2>&1 >/dev/null | tail -n1)")
    $S node import "$work/one.csv" --replace >/dev/null
    pub1000+=("$(ms $S publish "t@$([[ $((r % 2)) -eq 0 ]] && echo "$B" || echo "$A")" --group g0)")
    # The floors: the same 2,000 node files written by the shell, one sync.
    raw=$work/tftp/raw
    rm -rf "$raw" && mkdir -p "$raw"
    t0=$(date +%s%N)
    for ((i = 0; i < 2000; i++)); do printf '#!ipxe\nchain --autofree ../groups/g%d.ipxe\n' $((i % 10)) >"$raw/$i"; done
    sync -f "$raw"
    raw_files+=($((($(date +%s%N) - t0) / 1000000)))
    cp "$work/tftp/sidus/groups/g0.ipxe" "$raw/g.tmp"
    raw_one+=("$(ms mv "$raw/g.tmp" "$raw/g.ipxe")")
done
rm -rf "$work/tftp/raw"

I=$(median "${imp[@]}") P1=$(median "${pub100[@]}") P2=$(median "${pub1000[@]}")
L=$(median "${list[@]}") M=$(median "${mem[@]}") RF=$(median "${raw_files[@]}") RO=$(median "${raw_one[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b < 1) b = 1; printf "%.1fx", a / b }'; }
verdict() { if (($1 < $2)); then echo "OK"; else echo "OVER"; fi; }
echo "fleet on loop btrfs, 1,000 nodes, median of $rounds rounds:"
printf '  %-46s %6s ms  (%s; shell writing the 2,000 files + sync -f: %s ms, %s)\n' \
    "node import, 1,000 nodes in 10 groups" "$I" "$(verdict "$I" 1000)" "$RF" "$(ratio "$I" "$RF")"
printf '  %-46s %6s ms  (%s)\n' "publish --group, 100-node group" "$P1" "$(verdict "$P1" 1000)"
printf '  %-46s %6s ms  (%s; cp + mv of one file: %s ms)\n' "publish --group, 1,000-node group" "$P2" "$(verdict "$P2" 1000)" "$RO"
printf '  %-46s %6s ms  (%s)\n' "nodes --json, 1,000 nodes" "$L" "$(verdict "$L" 1000)"
printf '  %-46s %6s MB  (%s)\n' "nodes --json peak memory" "$((M / 1024))" "$(verdict $((M / 1024)) 30)"

#!/usr/bin/env bash
# Benchmark of `sidus publish` on a loop-backed btrfs store, natively (root):
# time from the start of the command to the boot entry in place (the JSON
# boot_entry_ms) and the whole command's wall time, for N switches between
# fresh snapshots. The host has no nfsd, so apply_exports = false: exportfs is
# not run (the VM scenario tests/vm/scenarios/publish.sh times it with nfsd).
# Target: under 1 s on btrfs. Usage: [KERNEL_MB=12 INITRD_MB=40] bench/publish.sh [N] (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}
kmb=${KERNEL_MB:-12} imb=${INITRD_MB:-40}
cargo build --release --quiet
S=${CARGO_TARGET_DIR:-$PWD/target}/release/sidus
work=$(mktemp -d /var/tmp/sidus-bench.XXXXXX)
export SIDUS_CONFIG=$work/sidus.toml
cleanup() {
    findmnt -rn -o TARGET | grep "^$work/srv/" | sort -r | xargs -r -n1 umount || true
    umount "$work/store" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
$S init --loop "$work/store.img" --path "$work/store" --size 4G >/dev/null
cat >>"$SIDUS_CONFIG" <<CFG

[publish]
root = "$work/srv"
boot_root = "$work/tftp"
exports_file = "$work/exports.d/sidus.exports"
server = "192.0.2.1"
clients = ["127.0.0.1"]
apply_exports = false
CFG
mkdir -p "$work/src/boot" && cp -a /usr/share/doc "$work/src/" 2>/dev/null || true
head -c "${kmb}M" /dev/urandom >"$work/src/boot/vmlinuz-6.1.0-26-amd64"
head -c "${imb}M" /dev/urandom >"$work/src/boot/initrd.img-6.1.0-26-amd64"
$S create t --from-dir "$work/src" >/dev/null
tot_entry=0 tot_wall=0
for ((i = 1; i <= n; i++)); do
    echo "$i" >"$($S path t)/round"
    $S snapshot t >/dev/null
    t0=$(date +%s%N)
    ms=$($S publish t --json | sed -n 's/.*"boot_entry_ms": \([0-9]*\).*/\1/p')
    wall=$((($(date +%s%N) - t0) / 1000000))
    tot_entry=$((tot_entry + ms)) tot_wall=$((tot_wall + wall))
done
echo "publish on btrfs (native, $kmb MB kernel + $imb MB initrd copied each time, $n IDs exported at the end):"
echo "  boot entry in place after $((tot_entry / n)) ms on average; whole command $((tot_wall / n)) ms"

#!/usr/bin/env bash
# What `sidus run` costs on top of the command: `sidus run TREE -- true` (pre
# snapshot, namespaces, mounts, wrappers, cleanup, post snapshot) against a
# plain `chroot TREE /bin/true`, on a loop-backed btrfs store with a static
# busybox tree. Root only. Target: wrapping < 100 ms. Usage: bench/run.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
cargo build --release --quiet
S=${CARGO_TARGET_DIR:-$PWD/target}/release/sidus
work=$(mktemp -d /var/tmp/sidus-bench-run.XXXXXX)
export SIDUS_CONFIG=$work/sidus.toml
cleanup() { umount "$work/store" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
$S init --loop "$work/store.img" --path "$work/store" --size 4G >/dev/null
src=$work/src
mkdir -p "$src"/{bin,sbin,usr/sbin,etc,root,tmp,run}
cp /bin/busybox "$src/bin/"
for a in $(/bin/busybox --list); do [[ -e $src/bin/$a ]] || ln -s busybox "$src/bin/$a"; done
ln -s ../bin/busybox "$src/sbin/start-stop-daemon"
: >"$src/etc/resolv.conf"
$S create t --from-dir "$src" >/dev/null
tree=$($S path t)

ms() { # mean wall time in µs of running "$@" $runs times
    local start end
    start=$(date +%s%N)
    for ((i = 0; i < runs; i++)); do "$@" >/dev/null; done
    end=$(date +%s%N)
    echo $(((end - start) / runs / 1000))
}
fmt() { awk -v u="$1" 'BEGIN { printf "%.1f ms", u / 1000 }'; }

$S run t -- true >/dev/null 2>&1 # warm up
sid=$(ms $S run t -- true 2>/dev/null)
raw=$(ms chroot "$tree" /bin/true)
snap=$(ms $S snapshot t)
wrap=$((sid - raw))
printf '%-36s %10s\n' "sidus run t -- true" "$(fmt $sid)"
printf '%-36s %10s\n' "chroot TREE /bin/true" "$(fmt $raw)"
printf '%-36s %10s   (of which 2 snapshots: ~%s)\n' "wrapping (difference)" "$(fmt $wrap)" "$(fmt $((2 * snap)))"
if ((wrap < 100000)); then echo "OK: wrapping under 100 ms"; else echo "OVER: wrapping above 100 ms"; fi

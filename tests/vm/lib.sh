# Helpers for the VM scenarios (tests/vm/scenarios/*.sh).
#
# The VM's /init sources this file before each scenario, in a bash running with
# `set -eEuo pipefail`, and with SIDUS_TEST_BACKEND (zfs|lvm|btrfs) and
# SIDUS_SCENARIO set. A scenario passes when it exits 0, fails on any other
# status, and is skipped with `skip MSG` (exit 77).
#
# Test disks are found by the serial qemu gives them (tests/vm/run passes
# -drive ...,serial=NAME), via udev's /dev/disk/by-id/virtio-NAME links, never
# by /dev/vdX order.
# shellcheck shell=bash

# Names used by setup_store; scenarios may read them.
ZPOOL=sidustest
ZFS_DATASET=$ZPOOL/sidus
VG=sidusvg
THINPOOL=pool
# Small: the full-pool scenarios write the pool full through TCG.
THINPOOL_SIZE=800M
BTRFS_MNT=/mnt/sidus-btrfs
export SIDUS_CONFIG=/tmp/sidus-${SIDUS_TEST_BACKEND:-none}.toml

# Say where a failure happened: set -e alone would end the scenario silently.
# (Only at the top level: with set -E a failing $(...) would report twice.)
trap '_rc=$?; [[ $BASH_SUBSHELL -gt 0 ]] || echo "FAIL: ${BASH_SOURCE[0]##*/}:${LINENO}: \`${BASH_COMMAND}\` exited $_rc" >&2' ERR

# --- reporting ---------------------------------------------------------------------

# step MSG: a visible marker in the console log, so a failure is easy to place.
step() { echo "--- ${SIDUS_TEST_BACKEND:-}:${SIDUS_SCENARIO:-}: $*"; }

# fail MSG: end the scenario as failed.
fail() {
    trap - ERR
    echo "FAIL: ${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}: $*" >&2
    exit 1
}

# skip MSG: end the scenario as skipped (e.g. not meaningful on this backend).
skip() {
    trap - ERR
    echo "SKIP: $*" >&2
    exit 77
}

# assert_eq ACTUAL EXPECTED [MSG]
assert_eq() {
    [[ $1 == "$2" ]] || fail "${3:-values differ}: expected '$2', got '$1'"
}

# assert_ne ACTUAL UNEXPECTED [MSG]
assert_ne() {
    [[ $1 != "$2" ]] || fail "${3:-values are equal}: got '$1'"
}

# assert_contains HAYSTACK NEEDLE [MSG]  (plain substring, case-sensitive)
assert_contains() {
    [[ $1 == *"$2"* ]] || fail "${3:-missing text}: '$2' not in: $1"
}

# assert_not_contains HAYSTACK NEEDLE [MSG]
assert_not_contains() {
    [[ $1 != *"$2"* ]] || fail "${3:-unexpected text}: '$2' in: $1"
}

# expect_fail [--rc N] CMD...: CMD must exit non-zero (exactly N with --rc).
# Sets EF_RC, EF_OUT (stdout) and EF_ERR (stderr) for further checks.
expect_fail() {
    local want=
    if [[ ${1:-} == --rc ]]; then want=$2; shift 2; fi
    local errf; errf=$(mktemp)
    EF_RC=0
    EF_OUT=$("$@" 2>"$errf") || EF_RC=$?
    EF_ERR=$(<"$errf")
    rm -f "$errf"
    if [[ $EF_RC -eq 0 ]]; then
        fail "expected failure, but succeeded: $* (stdout: $EF_OUT)"
    fi
    if [[ -n $want && $EF_RC -ne $want ]]; then
        fail "expected exit $want, got $EF_RC: $* (stderr: $EF_ERR)"
    fi
    echo "ok: failed as expected (exit $EF_RC): $* -> $EF_ERR"
}

# jq_fields JSON FILTER...: runs the filters (each giving one value) in one
# jq, leaving their -r outputs in the array JQ, in order. jq takes ~0.3 s to
# start under TCG, so a scenario reads several fields at once.
jq_fields() {
    local json=$1
    shift
    local f program=
    for f in "$@"; do program+="${program:+,}($f)"; done
    mapfile -t JQ < <(jq -r "$program" <<<"$json")
    ((${#JQ[@]} == $#)) || fail "jq gave ${#JQ[@]} values for $# filters ($*) on: $json"
}

# json_len JSON: number of elements of a JSON array.
json_len() { jq 'length' <<<"$1"; }

# doctor_healthy [TREE]: `sidus doctor` must find the store healthy (exit 0).
doctor_healthy() {
    local out rc=0
    out=$(sidus doctor "$@" 2>&1) || rc=$?
    [[ $rc -eq 0 ]] || fail "sidus doctor $* exited $rc: $out"
    echo "ok: doctor: ${out##*$'\n'}"
}

# --- disks ---------------------------------------------------------------------------

# disk NAME: path of the virtio disk qemu gave serial NAME (zfsdisk, lvmdisk,
# sparedisk). Waits for udev: the links can lag right after boot or wipefs.
disk() {
    local link=/dev/disk/by-id/virtio-$1 i
    for i in $(seq 1 30); do
        [[ -e $link ]] && { readlink -f "$link"; return 0; }
        udevadm settle --timeout=5 || true
        sleep 1
    done
    fail "no disk with serial $1 ($link missing)"
}

# --- stores ----------------------------------------------------------------------------

# setup_store: a fresh, empty store for $SIDUS_TEST_BACKEND, initialised with
# `sidus init` and its config in $SIDUS_CONFIG.
setup_store() {
    rm -f "$SIDUS_CONFIG"
    case ${SIDUS_TEST_BACKEND:?} in
    zfs)
        zpool create -f -O mountpoint=none "$ZPOOL" "$(disk zfsdisk)"
        sidus init --backend zfs --dataset "$ZFS_DATASET"
        ;;
    lvm)
        local d; d=$(disk lvmdisk)
        pvcreate -ff -y "$d"
        vgcreate "$VG" "$d"
        lvcreate -y --type thin-pool -L "$THINPOOL_SIZE" -n "$THINPOOL" "$VG"
        sidus init --backend lvm --vg "$VG" --thinpool "$THINPOOL"
        ;;
    btrfs)
        local d; d=$(disk sparedisk)
        mkfs.btrfs -q -f "$d"
        mkdir -p "$BTRFS_MNT"
        mount "$d" "$BTRFS_MNT"
        sidus init --backend btrfs --path "$BTRFS_MNT/store"
        ;;
    *) fail "unknown backend '$SIDUS_TEST_BACKEND'" ;;
    esac
}

# teardown_store: remove the store and everything sidus mounted from it, so the
# next scenario starts from blank disks. Safe to call twice.
teardown_store() {
    _unmount_store
    case ${SIDUS_TEST_BACKEND:-} in
    zfs)
        if zpool list -H -o name "$ZPOOL" >/dev/null 2>&1; then
            zpool destroy -f "$ZPOOL"
        fi
        wipefs -a -q "$(disk zfsdisk)" 2>/dev/null || true
        ;;
    lvm)
        if vgs "$VG" >/dev/null 2>&1; then
            vgremove -ff -y "$VG"
        fi
        local d; d=$(disk lvmdisk)
        pvremove -ff -y "$d" >/dev/null 2>&1 || true
        wipefs -a -q "$d" 2>/dev/null || true
        ;;
    btrfs)
        wipefs -a -q "$(disk sparedisk)" 2>/dev/null || true
        ;;
    esac
    rm -f "$SIDUS_CONFIG"
    udevadm settle --timeout=30 || true
}

# Unmounts (deepest first) every mount that comes from the test store: NFS
# mounts of our exports, anything from the pool/VG/btrfs disk, and whatever is
# below those mounts (bind mounts, read-only snapshot views).
_unmount_store() {
    local src tgt fstype _ pattern
    local -a targets=()
    case ${SIDUS_TEST_BACKEND:-} in
    zfs) pattern="^$ZPOOL(/|@|$)" ;;
    lvm) pattern="^/dev/mapper/$VG-|^/dev/$VG/" ;;
    btrfs) pattern="^$(disk sparedisk)\$" ;;
    *) pattern='^$' ;;
    esac
    while read -r src tgt fstype _; do
        tgt=$(printf '%b' "$tgt")   # /proc/self/mounts escapes spaces as \040
        if [[ $fstype == nfs* ]] || [[ $src =~ $pattern ]]; then
            targets+=("$tgt")
        fi
    done </proc/self/mounts
    # Longest paths first, so nested mounts go before their parents.
    local t
    while read -r t; do
        [[ -n $t ]] || continue
        umount -R "$t" 2>/dev/null || umount -l "$t" 2>/dev/null || true
    done < <(printf '%s\n' "${targets[@]}" | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-)
}

# vm_reset: called by /init after every scenario (passed or not): drops NFS
# exports and tears down the store of the backend the scenario ran on.
vm_reset() {
    set +e
    trap - ERR
    rm -f /etc/exports.d/*.exports
    : >/etc/exports
    exportfs -ra 2>/dev/null
    teardown_store
    # What a scenario published belongs to its store: the next one's doctor
    # would rightly call boot entries of a tree it does not have a problem.
    rm -rf /srv/tftp/sidus /srv/tftp/pxelinux.cfg/sidus-*
    [[ ! -d /srv/sidus ]] || find /srv/sidus -mindepth 1 -depth -type d -empty -delete
    nfsd_up
    set -e
}

# --- NFS -------------------------------------------------------------------------------

# nfsd_up: starts the kernel NFS server's threads if they are not running
# (seen stopped after a previous scenario tore its store down).
nfsd_up() {
    local n; n=$(cat /proc/fs/nfsd/threads 2>/dev/null || echo 0)
    if [[ $n == 0 ]]; then
        echo "nfsd had no threads: rpc.nfsd 8"
        rpc.nfsd 8
    fi
}

# nfs_mount EXPORT DIR [OPTIONS]: mounts 127.0.0.1:EXPORT on DIR over NFSv3
# (OPTIONS default vers=3,nolock). Retries a few times, since mountd can lag
# behind an exportfs, and shows the RPC services when it gives up.
nfs_mount() {
    local i
    mkdir -p "$2"
    nfsd_up
    for i in 1 2 3 4 5; do
        mount -t nfs -o "${3:-vers=3,nolock}" "127.0.0.1:$1" "$2" && return 0
        pgrep -x rpc.mountd >/dev/null || { echo "rpc.mountd is not running: starting it"; rpc.mountd; }
        sleep 1
    done
    rpcinfo -p 127.0.0.1 || true
    exportfs -v || true
    fail "cannot NFS-mount 127.0.0.1:$1 on $2"
}

# --- the Rust test archive ---------------------------------------------------------------

# run_test_archive FILTER [NEXTEST-ARGS...]: runs the tests of the nextest archive tests/vm/run
# ships (/sidus/contract) that the filterset FILTER selects, on this backend:
# makes a ZFS pool or a volume group in which each test makes its own thin
# pool (tests/common/stores.rs), and an ext4 for the tests' temp dirs. Prints
# one SIDUS-TEST line per test with its time, then the skips and nextest's
# summary; SIDUS_SHARD (N/M) runs one nextest partition. Fails when a test does.
run_test_archive() {
    local contract=/sidus/contract filter=$1 scratch=/var/tmp/contract d rc=0 n
    shift
    [[ -f $contract/tests.tar.zst ]] || fail "no $contract/tests.tar.zst (tests/vm/run ships it)"
    case $SIDUS_TEST_BACKEND in
    zfs)
        step "pool $ZPOOL for the tests' datasets"
        zpool create -f -O mountpoint=none "$ZPOOL" "$(disk zfsdisk)"
        ;;
    lvm)
        step "volume group $VG for the tests' thin pools"
        d=$(disk lvmdisk)
        pvcreate -q -ff -y "$d"
        vgcreate -q "$VG" "$d"
        ;;
    *) skip "the Rust tests run natively on $SIDUS_TEST_BACKEND" ;;
    esac

    step "scratch space for the tests' temp dirs"
    # The VM's / and /tmp are tmpfs, which keeps no user.* xattrs before Linux
    # 6.6: the tests' source trees live on an ext4 of the spare disk instead.
    mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 "$(disk sparedisk)"
    mkdir -p "$scratch"
    mount "$(disk sparedisk)" "$scratch"
    trap 'umount -l /var/tmp/contract 2>/dev/null; wipefs -a -q "$(disk sparedisk)" 2>/dev/null' EXIT

    step "cargo-nextest run on $SIDUS_TEST_BACKEND: $filter"
    local skips=/tmp/contract-skips
    : >"$skips"
    # nextest reports on stderr; its status lines (PASS, FAIL, SIGKILL, TIMEOUT...
    # with each test's time) and summary go to the host as SIDUS-TEST lines.
    TMPDIR=$scratch SIDUS_TEST_ZPOOL=$ZPOOL SIDUS_TEST_VG=$VG SIDUS_TEST_SKIP_LOG=$skips \
        SIDUS_TEST_BIN=$(command -v sidus) RUST_BACKTRACE=1 \
        cargo-nextest nextest run --archive-file "$contract/tests.tar.zst" \
        --workspace-remap "$contract/workspace" --config-file "$contract/nextest.toml" \
        -E "$filter" ${SIDUS_SHARD:+--partition "count:$SIDUS_SHARD"} \
        --color never --no-fail-fast --status-level pass --final-status-level fail "$@" 2>&1 |
        awk '/^ *(PASS|FAIL|SIG[A-Z]+|TIMEOUT|ABORT|LEAK|LEAK-FAIL|SLOW|TRY [0-9]+ [A-Z]+) \[|^ *Summary \[|failpoints x 1 backend/ { print "SIDUS-TEST " $0; fflush(); next } { print; fflush() }' ||
        rc=$?
    while IFS= read -r line; do echo "SIDUS-TEST $line"; done <"$skips"
    n=$(wc -l <"$skips")
    if ((n)); then echo "SIDUS-TEST $n skipped on $SIDUS_TEST_BACKEND (listed above)"; else echo "SIDUS-TEST none skipped on $SIDUS_TEST_BACKEND"; fi
    ((rc == 0)) || fail "cargo-nextest failed (exit $rc)"
}

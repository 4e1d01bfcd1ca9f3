# backends: zfs lvm
# contract-suite
# shards: lvm=2
# timeout: 1800
# The contract suite (tests/contract_*.rs, the same test binaries `cargo
# nextest run` runs natively on btrfs) on this backend: tests/vm/run ships
# them as a nextest archive with cargo-nextest in /sidus/contract. Here the VM
# gives them what they need: a ZFS pool, or a volume group in which each test
# makes its own thin pool (tests/common/stores.rs), and an ext4 for their temp
# dirs. Prints one SIDUS-TEST line
# per test with its time, then the skips and nextest's summary. On LVM, where
# every test makes a thin pool and a state volume first, the suite is cut in
# two shards (SIDUS_SHARD, nextest --partition) that can run on two VMs.

contract=/sidus/contract
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
*) skip "the contract runs natively on $SIDUS_TEST_BACKEND" ;;
esac

step "scratch space for the tests' temp dirs"
# The VM's / and /tmp are tmpfs, which keeps no user.* xattrs before Linux
# 6.6: the tests' source trees live on an ext4 of the spare disk instead.
scratch=/var/tmp/contract
mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 "$(disk sparedisk)"
mkdir -p "$scratch"
mount "$(disk sparedisk)" "$scratch"
trap 'umount -l "$scratch" 2>/dev/null; wipefs -a -q "$(disk sparedisk)" 2>/dev/null' EXIT

step "cargo-nextest run on $SIDUS_TEST_BACKEND"
skips=/tmp/contract-skips
: >"$skips"
rc=0
# nextest reports on stderr; its status lines (PASS, FAIL, SIGKILL, TIMEOUT...
# with each test's time) and summary go to the host as SIDUS-TEST lines.
TMPDIR=$scratch SIDUS_TEST_ZPOOL=$ZPOOL SIDUS_TEST_VG=$VG SIDUS_TEST_SKIP_LOG=$skips \
    SIDUS_TEST_BIN=$(command -v sidus) RUST_BACKTRACE=1 \
    cargo-nextest nextest run --archive-file "$contract/tests.tar.zst" \
    --workspace-remap "$contract/workspace" --config-file "$contract/nextest.toml" \
    -E "${SIDUS_VM_CONTRACT_FILTER:-all()}" ${SIDUS_SHARD:+--partition "count:$SIDUS_SHARD"} \
    --color never --no-fail-fast --status-level pass --final-status-level fail 2>&1 |
    awk '/^ *(PASS|FAIL|SIG[A-Z]+|TIMEOUT|ABORT|LEAK|LEAK-FAIL|SLOW|TRY [0-9]+ [A-Z]+) \[|^ *Summary \[/ { print "SIDUS-TEST " $0; fflush(); next } { print; fflush() }' ||
    rc=$?
while IFS= read -r line; do echo "SIDUS-TEST $line"; done <"$skips"
n=$(wc -l <"$skips")
if ((n)); then echo "SIDUS-TEST $n skipped on $SIDUS_TEST_BACKEND (listed above)"; else echo "SIDUS-TEST none skipped on $SIDUS_TEST_BACKEND"; fi
((rc == 0)) || fail "cargo-nextest failed (exit $rc)"

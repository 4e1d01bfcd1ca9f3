# backends: zfs lvm
# `sidus doctor` on real ZFS and LVM thin: healthy after create, snapshot,
# clone and rollback; a snapshot aborted at a failpoint, an interrupted
# rollback's copy (ZFS swap dataset, LVM incoming LV), emptied and orphaned
# ZFS history datasets, a stray mount and a drifted mode are reported with
# exit 1 and the command that fixes them; --repair fixes what holds no data
# and leaves what does. (btrfs: tests/root_btrfs_doctor.rs.)

lv_names() { lvs --noheadings -o lv_name "$VG" | tr -d ' ' | sort | tr '\n' ' '; }

setup_store
src=/tmp/doctor-src
rm -rf "$src" && mkdir -p "$src/mnt" && echo A >"$src/f"
sidus create t1 --from-dir "$src"
A=$(sidus snapshot t1 -m A)
echo B >"$(sidus path t1)/f"
B=$(sidus snapshot t1 -m B)
sidus clone "t1@$A" c1
sidus rollback "t1@$A"
doctor_healthy

step "a snapshot aborted at a failpoint: named, settled by --repair"
SIDUS_FAILPOINT=snapshot:after-snapshot sidus snapshot t1 -m aborted 2>/dev/null &&
    fail "the failpoint did not abort"
expect_fail --rc 1 sidus doctor
assert_contains "$EF_OUT" "an interrupted \`sidus snapshot t1 -m aborted\`"
assert_contains "$EF_OUT" "fix: sidus doctor --repair t1"
sidus doctor --repair t1
doctor_healthy
assert_eq "$(sidus log t1 --json | jq -r '.[0].action')" snapshot "recovery journaled it"

step "an interrupted rollback's copy beside the working tree"
case $SIDUS_TEST_BACKEND in
zfs)
    snap=$(zfs list -H -o name -t snapshot -r "$ZFS_DATASET" | grep "/trees/t1@$A\$")
    zfs clone -o sidus:tree=t1 "$snap" "$ZFS_DATASET/swap/t1"
    copy=$ZFS_DATASET/swap/t1
    ;;
lvm)
    lvcreate -q -y -s -k n -p rw -n sidus.n.t1 --addtag sidus_tree=t1 "$VG/sidus.s.t1.$A"
    copy=$VG/sidus.n.t1
    ;;
esac
before=$(sidus doctor --json || true)
jq_fields "$before" '.healthy' "[.problems[] | select(.check == \"leftover\")][0].what" \
    "[.problems[] | select(.check == \"leftover\")][0].fix"
assert_eq "${JQ[0]}" false
assert_contains "${JQ[1]}" "$copy: the copy an interrupted rollback had not swapped in yet"
assert_eq "${JQ[2]}" "sidus doctor --repair t1"
sidus doctor --repair
doctor_healthy
case $SIDUS_TEST_BACKEND in
zfs) ! zfs list "$copy" >/dev/null 2>&1 || fail "$copy left" ;;
lvm) assert_not_contains "$(lv_names)" sidus.n.t1 "incoming copy removed" ;;
esac
assert_eq "$(cat "$(sidus path t1)/f")" A "the working tree is untouched"

if [[ $SIDUS_TEST_BACKEND == zfs ]]; then
    step "zfs: an emptied history dataset goes, one of a gone tree with a snapshot stays"
    zfs create -o sidus:tree=t1 "$ZFS_DATASET/history/t1.20200101T000000Z"
    zfs create -o sidus:tree=gone "$ZFS_DATASET/history/gone.20200101T000000Z"
    zfs snapshot "$ZFS_DATASET/history/gone.20200101T000000Z@20200101T000000Z"
    expect_fail --rc 1 sidus doctor
    assert_contains "$EF_OUT" "history/t1.20200101T000000Z: a history dataset whose snapshots are all deleted"
    assert_contains "$EF_OUT" "of tree 'gone', which no longer exists, with 1 snapshot(s) (it holds data)"
    expect_fail --rc 1 sidus doctor --repair
    ! zfs list "$ZFS_DATASET/history/t1.20200101T000000Z" >/dev/null 2>&1 || fail "emptied history left"
    zfs list "$ZFS_DATASET/history/gone.20200101T000000Z" >/dev/null || fail "data removed"
    zfs destroy -r "$ZFS_DATASET/history/gone.20200101T000000Z"
    doctor_healthy
fi

step "a stray mount in a tree and a drifted mode"
case $SIDUS_TEST_BACKEND in
zfs) state=$(zfs get -H -o value mountpoint "$ZFS_DATASET")/.sidus ;;
lvm) state=/var/lib/sidus/lvm/state ;;
esac
p=$(sidus path c1)
mount -t tmpfs stray "$p/mnt"
chmod 666 "$state/journal.jsonl"
expect_fail --rc 1 sidus doctor
assert_contains "$EF_OUT" "$p/mnt is mounted inside tree 'c1'"
assert_contains "$EF_OUT" "journal.jsonl is writable by its group or others (mode 0666)"
sidus doctor --repair
doctor_healthy
assert_not_contains "$(cat /proc/self/mountinfo)" " $p/mnt " "stray mount gone"
assert_eq "$(stat -c %a "$state/journal.jsonl")" 644

step "cleanup: healthy to the end"
sidus destroy c1
sidus destroy t1
doctor_healthy
teardown_store

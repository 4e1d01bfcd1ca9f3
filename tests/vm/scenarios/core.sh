# backends: zfs lvm
# The sidus CLI contract end to end on one store: create from a directory,
# snapshot, list, show, clone, non-destructive rollback, read-only snapshot
# views, the refusals (bad name, deleting a clone's origin, destroying a tree
# with a clone, LVM pool above its threshold) and cleanup to an empty store.
# (btrfs runs this contract natively: tests/root_btrfs_core.rs.)

# digest DIR: one line per entry with what a copy, snapshot or clone must keep
# (type, mode incl. setuid, owner, hard-link count, symlink target, content).
# Directory sizes and link counts differ between file systems, so they are left
# out; ext4's lost+found (LVM trees) is not content.
digest() {
    (
        cd "$1"
        find . -mindepth 1 -path ./lost+found -prune -o \
            \( -type d -printf '%p|d|%m|%U:%G\n' \) -o \
            \( ! -type d -printf '%p|%y|%m|%U:%G|%n|%l\n' \) | LC_ALL=C sort
        find . -path ./lost+found -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 -r md5sum
    )
}

# snap_ids TREE: the IDs of TREE's snapshots, oldest first, one per line.
snap_ids() { sidus --json snapshots "$1" | jq -r '.[].id'; }

setup_store

step "source directory"
src=/tmp/core-src
rm -rf "$src"
mkdir -p "$src/etc" "$src/usr/bin" "$src/var/empty"
echo "version A" >"$src/etc/motd"
echo "node" >"$src/etc/hostname"
echo "spaced" >"$src/etc/with space"
ln -s ../etc/motd "$src/usr/motd-link"                      # symlink
ln "$src/etc/hostname" "$src/etc/hostname.hard"              # hard link
printf '#!/bin/sh\necho hi\n' >"$src/usr/bin/suidprog"
echo "owned" >"$src/etc/owned"
chown 1234:5678 "$src/etc/owned"
chmod 4755 "$src/usr/bin/suidprog"                           # setuid, after any chown
chmod 700 "$src/var/empty"
digest_src=$(digest "$src")

step "create t1 --from-dir"
sidus create t1 --from-dir "$src"
p=$(sidus path t1)
[[ -d $p ]] || fail "sidus path t1 printed '$p', not a directory"
assert_eq "$(cat "$p/etc/motd")" "version A" "file content"
assert_eq "$(readlink "$p/usr/motd-link")" "../etc/motd" "symlink target"
assert_eq "$(stat -c %i "$p/etc/hostname")" "$(stat -c %i "$p/etc/hostname.hard")" "hard link kept"
assert_eq "$(stat -c %a "$p/usr/bin/suidprog")" 4755 "setuid mode"
assert_eq "$(stat -c %u:%g "$p/etc/owned")" 1234:5678 "owner"
assert_eq "$(digest "$p")" "$digest_src" "t1 equals its source directory"

list=$(sidus --json list)
jq_fields "$list" '.[] | select(.name == "t1") | .backend' '.[] | select(.name == "t1") | .path' \
    '.[] | select(.name == "t1") | .snapshots'
assert_eq "${JQ[0]}" "$SIDUS_TEST_BACKEND" "list: backend"
assert_eq "${JQ[1]}" "$p" "list: path = sidus path"
assert_eq "${JQ[2]}" 0 "list: no snapshots yet"

step "snapshot A"
A=$(sidus snapshot t1 -m first)
[[ $A =~ ^[0-9]{8}T[0-9]{6}Z(\.[0-9]+)?$ ]] || fail "snapshot printed '$A', not an ID"
digest_A=$(digest "$p")

step "modify, snapshot B (--json)"
echo "version B" >"$p/etc/motd"
echo "added" >"$p/etc/added"
rm "$p/etc/owned"
Bj=$(sidus --json snapshot t1 -m second)
jq -e 'has("tree") and has("id") and has("created") and has("kind") and has("message")
       and has("parent") and has("user") and has("command")' <<<"$Bj" >/dev/null ||
    fail "snapshot object lacks fields: $Bj"
jq_fields "$Bj" .id .tree .kind .message .parent
B=${JQ[0]}
assert_eq "${JQ[1]}" t1 "B.tree"
assert_eq "${JQ[2]}" manual "B.kind"
assert_eq "${JQ[3]}" second "B.message"
assert_eq "${JQ[4]}" "$A" "B.parent is the previous latest"
assert_ne "$B" "$A" "snapshot IDs are unique"
digest_B=$(digest "$p")
assert_ne "$digest_B" "$digest_A" "B differs from A"

step "snapshots, show, refs"
S=$(sidus --json snapshots t1)
assert_eq "$(json_len "$S")" 2 "two snapshots"
assert_eq "$(jq -r '.[].id' <<<"$S")" "$A"$'\n'"$B" "oldest first"
assert_eq "$(sidus --json show "t1@$A" | jq -r .message)" first "show A"
assert_eq "$(sidus --json show t1@latest | jq -r .id)" "$B" "latest is B"
# The shortest prefix of B that A does not share is a unique ref for B.
i=0
while [[ ${A:i:1} == "${B:i:1}" ]]; do i=$((i + 1)); done
assert_eq "$(sidus --json show "t1@${B:0:i+1}" | jq -r .id)" "$B" "unique prefix ${B:0:i+1}"
expect_fail sidus show t1@2             # both IDs start with 2: ambiguous
expect_fail sidus show t1@19990101T000000Z
list=$(sidus --json list)
jq_fields "$list" '.[] | select(.name == "t1") | .snapshots' '.[] | select(.name == "t1") | .latest'
assert_eq "${JQ[0]}" 2 "list: count"
assert_eq "${JQ[1]}" "$B" "list: latest"

step "read-only snapshot views"
pa=$(sidus path "t1@$A")
pb=$(sidus path "t1@$B")
assert_eq "$(digest "$pa")" "$digest_A" "view of A"
assert_eq "$(digest "$pb")" "$digest_B" "view of B"
expect_fail touch "$pa/etc/should-not-exist"

step "clone t1@A c1"
sidus clone "t1@$A" c1
pc=$(sidus path c1)
assert_ne "$pc" "$p" "clone has its own path"
assert_eq "$(digest "$pc")" "$digest_A" "c1 equals A"
echo "only in c1" >"$pc/etc/clone-only"
[[ ! -e $p/etc/clone-only ]] || fail "a write to the clone shows in t1"
[[ ! -e $pa/etc/clone-only ]] || fail "a write to the clone shows in t1@A"

step "rollback t1@A"
sidus rollback "t1@$A"
p=$(sidus path t1)
assert_eq "$(digest "$p")" "$digest_A" "working tree is A again"
S=$(sidus --json snapshots t1)
jq_fields "$S" length '.[0].id' '.[1].id' '.[2].kind' '.[2].id'
assert_eq "${JQ[0]}" 3 "A, B and a safety snapshot"
assert_eq "${JQ[1]}" "$A" "A still listed first"
assert_eq "${JQ[2]}" "$B" "B still listed"
assert_eq "${JQ[3]}" safety "newest is the safety snapshot"
safety=${JQ[4]}
assert_eq "$(digest "$(sidus path "t1@$safety")")" "$digest_B" "safety holds the replaced state"
pb=$(sidus path "t1@$B")
assert_eq "$(digest "$pb")" "$digest_B" "B unchanged by the rollback"
assert_eq "$(cat "$pb/etc/motd")" "version B" "B still has its change"
echo "after rollback" >"$p/etc/after-rollback"     # working tree is writable
rm "$p/etc/after-rollback"

step "refusals"
expect_fail --rc 2 sidus create 'Bad Name'
expect_fail --rc 2 sidus create "$(printf 'x%.0s' {1..49})"   # 49 chars: too long
expect_fail --rc 2 sidus snapshot 'Bad Name'
assert_eq "$(sidus --json list | jq -r '.[].name' | LC_ALL=C sort | tr '\n' ' ')" "c1 t1 " "no tree created by bad names"

expect_fail --rc 1 sidus delete "t1@$A"     # origin of clone c1
assert_eq "$(echo "$EF_ERR" | wc -l)" 1 "one-line error"
assert_contains "$(snap_ids t1)" "$A" "A not deleted"
assert_eq "$(json_len "$(sidus --json snapshots t1)")" 3 "nothing deleted"

expect_fail --rc 1 sidus destroy t1        # c1 was cloned from it
assert_contains "$(sidus --json list | jq -r '.[].name')" t1 "t1 not destroyed"
assert_eq "$(digest "$(sidus path c1)" | grep -c clone-only)" 2 "c1 intact"

if [[ $SIDUS_TEST_BACKEND == lvm ]]; then
    step "LVM: snapshot refused above lvm.max_pool_use_percent (90)"
    pool_pct() { lvs --noheadings -o data_percent "$VG/$THINPOOL" | tr -d ' '; }
    lvcreate -y -V 2G -T "$VG/$THINPOOL" -n filler
    # Up to ~88% in one write, then 16 MiB steps until past 91%; stop well
    # before 100% (a full thin pool queues or errors every write, sidus' too).
    pool_mib=$(lvs --noheadings --units m --nosuffix -o lv_size "$VG/$THINPOOL" | tr -d ' ')
    off=$(awk -v p="$(pool_pct)" -v s="${pool_mib%.*}" 'BEGIN { n = int((88 - p) * s / 100); print (n > 0 ? n : 0) }')
    dd if=/dev/zero of="/dev/$VG/filler" bs=1M count="$off" oflag=direct status=none
    while awk -v p="$(pool_pct)" 'BEGIN { exit !(p < 91.5) }'; do
        dd if=/dev/zero of="/dev/$VG/filler" bs=1M count=16 seek="$off" oflag=direct status=none
        off=$((off + 16))
        ((off < 2048)) || fail "pool still at $(pool_pct)% after writing ${off}M"
    done
    echo "thin pool data use: $(pool_pct)%"
    before=$(snap_ids t1)
    lvs_before=$(lvs --noheadings -o lv_name "$VG" | sort)
    expect_fail --rc 1 sidus snapshot t1 -m too-full
    assert_contains "${EF_ERR,,}" pool "the refusal names the pool"
    assert_eq "$(echo "$EF_ERR" | wc -l)" 1 "one-line error"
    assert_eq "$(snap_ids t1)" "$before" "no snapshot taken when refused"
    expect_fail --rc 1 sidus clone "t1@$A" c2
    assert_contains "${EF_ERR,,}" pool "the clone refusal names the pool"
    assert_eq "$(lvs --noheadings -o lv_name "$VG" | sort)" "$lvs_before" "no LV created when refused"
    assert_not_contains "$(sidus --json list | jq -r '.[].name')" c2 "no clone made when refused"
    lvremove -y "$VG/filler"
    echo "thin pool data use after lvremove: $(pool_pct)%"
    extra=$(sidus snapshot t1 -m "room again")
    sidus delete "t1@$extra"
fi

step "log"
[[ -n $(sidus log t1) ]] || fail "sidus log t1 printed nothing"
sidus --json log t1 | jq -e . >/dev/null || fail "sidus --json log is not JSON"

doctor_healthy

step "delete and destroy"
sidus delete "t1@$B"
assert_not_contains "$(snap_ids t1)" "$B" "B deleted"
assert_eq "$(digest "$(sidus path "t1@$A")")" "$digest_A" "A intact after deleting B"
sidus destroy c1
if [[ $SIDUS_TEST_BACKEND == zfs ]]; then
    # ZFS: after the rollback the kept newer snapshots live in a clone of A,
    # so A can only go once they have: the refusal must say so.
    expect_fail --rc 1 sidus delete "t1@$A"
    assert_contains "$EF_ERR" "$safety" "the refusal names the snapshot based on A"
    sidus delete "t1@$safety"
    sidus delete "t1@$A"
    assert_eq "$(snap_ids t1)" "" "no snapshots left"
    assert_eq "$(zfs list -H -o name -r "$ZFS_DATASET/history")" "$ZFS_DATASET/history" \
        "emptied history datasets are removed"
else
    sidus delete "t1@$A"                   # no clone depends on it any more
    assert_eq "$(snap_ids t1)" "$safety" "only the safety snapshot is left"
fi
sidus destroy t1
expect_fail sidus path t1
assert_eq "$(sidus --json list | jq -c .)" "[]" "store is empty"
if [[ $SIDUS_TEST_BACKEND == lvm ]]; then
    left=$(lvs --noheadings -o lv_name "$VG" | tr -d ' ' | grep '^sidus\.' | grep -vx 'sidus.state' || true)
    assert_eq "$left" "" "no tree or snapshot LV left after destroy"
    mounted=$(grep -E " /var/lib/sidus/lvm/(trees|snapshots)/" /proc/self/mounts || true)
    assert_eq "$mounted" "" "nothing of the destroyed trees is still mounted"
fi

doctor_healthy
teardown_store

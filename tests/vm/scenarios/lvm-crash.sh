# backends: lvm
# A rollback swaps LVs by renames (working -> sidus.o.TREE, copy sidus.n.TREE ->
# working). Here the states a crash can leave are made by hand, and the next
# sidus command must find the tree whole; a rollback refused because the tree
# is busy must change nothing.

content() { cat "$(sidus path t1)/f"; }
lv_names() { lvs --noheadings -o lv_name "$VG" | tr -d ' ' | sort | tr '\n' ' '; }
# Every LV but the snapshots, one per line.
non_snapshots() { lvs --noheadings -o lv_name "$VG" | tr -d ' ' | grep -v '^sidus\.s\.' | sort; }

setup_store
mkdir -p /tmp/crash-src && echo A >/tmp/crash-src/f
sidus create t1 --from-dir /tmp/crash-src
A=$(sidus snapshot t1 -m A)
echo B >"$(sidus path t1)/f"
B=$(sidus snapshot t1 -m B)
p=$(sidus path t1)

step "cut after the first rename, copy of A present: rolled forward"
umount "$p"
lvcreate -q -y -s -k n -p rw -n sidus.n.t1 --addtag sidus_tree=t1 "$VG/sidus.s.t1.$A"
lvrename -q "$VG" sidus.t.t1 sidus.o.t1
assert_eq "$(sidus --json list | jq -r '.[].name')" t1 "the tree is listed"
assert_eq "$(content)" A "working tree is the copy"
assert_not_contains "$(lv_names)" sidus.o.t1 "old working LV removed"
assert_not_contains "$(lv_names)" sidus.n.t1 "copy renamed in"
assert_eq "$(sidus --json snapshots t1 | jq -r '.[].id' | tr '\n' ' ')" "$A $B " "snapshots kept"

step "cut after the first rename, no copy: renamed back"
umount "$p"
lvrename -q "$VG" sidus.t.t1 sidus.o.t1
assert_eq "$(content)" A "working tree is back"
assert_not_contains "$(lv_names)" sidus.o.t1 "renamed back"

step "copy left by a rollback cut before its renames: cleared by the next rollback"
lvcreate -q -y -s -k n -p rw -n sidus.n.t1 --addtag sidus_tree=t1 "$VG/sidus.s.t1.$A"
sidus rollback "t1@$B"
assert_eq "$(content)" B "rolled back to B"
assert_not_contains "$(lv_names)" sidus.n.t1 "leftover copy removed"

step "busy tree: rollback refused, tree unchanged"
(cd "$p" && exec sleep 120) &
busy=$!
sleep 1
before=$(non_snapshots)
expect_fail --rc 1 sidus rollback "t1@$A"
assert_eq "$(echo "$EF_ERR" | wc -l)" 1 "one-line error"
assert_contains "$EF_ERR" "in use" "says the tree is in use"
kill "$busy"; wait "$busy" 2>/dev/null || true
assert_eq "$(content)" B "working tree unchanged"
# The safety snapshot sidus takes before the swap stays; nothing else changed.
assert_eq "$(non_snapshots)" "$before" "no rollback copy left"

step "destroy leaves nothing mounted"
sidus path "t1@$A" >/dev/null
sidus destroy t1
mounted=$(grep -E " /var/lib/sidus/lvm/(trees|snapshots)/" /proc/self/mounts || true)
assert_eq "$mounted" "" "nothing mounted"
teardown_store

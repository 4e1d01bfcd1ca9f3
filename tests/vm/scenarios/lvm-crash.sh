# backends: lvm
# A rollback swaps LVs by renames (working -> sidus.o.TREE, copy sidus.n.TREE ->
# working). sidus is killed at each step of it (SIDUS_FAILPOINT aborts as a
# crash would): readers still list the tree and change nothing, the next
# writer finishes the rollback its intent names, and no copy is left. A
# rollback refused because the tree is busy changes nothing.

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

for fp in lvm:rollback-after-copy lvm:rollback-after-rename-out; do
    step "killed at $fp: listed meanwhile, the next writer finishes the rollback"
    # abort(3): 128 + SIGABRT.
    expect_fail --rc 134 env SIDUS_FAILPOINT="$fp" sidus rollback "t1@$A"
    before=$(lv_names)
    assert_eq "$(sidus --json list | jq -r '.[].name')" t1 "the tree is listed"
    assert_eq "$(lv_names)" "$before" "a reader changed nothing"
    next=$(sidus snapshot t1 -m next 2>&1)
    assert_contains "$next" "interrupted" "the next writer says what it settled"
    assert_eq "$(content)" A "working tree is the copy of A"
    assert_not_contains "$(lv_names)" sidus.o.t1 "old working LV removed"
    assert_not_contains "$(lv_names)" sidus.n.t1 "copy renamed in"
    ids=$(sidus --json snapshots t1 | jq -r '.[].id' | tr '\n' ' ')
    assert_contains "$ids" "$A " "A kept"
    assert_contains "$ids" "$B " "B kept"
    doctor_healthy
    echo B >"$(sidus path t1)/f"
    B=$(sidus snapshot t1 -m B-again)
done

step "busy tree: rollback refused, tree unchanged"
p=$(sidus path t1)
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

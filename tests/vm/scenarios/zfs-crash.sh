# backends: zfs
# A ZFS rollback clones the target to D/swap/TREE, renames the working dataset
# into D/history/ and the clone into its place. sidus is killed at each step
# (SIDUS_FAILPOINT aborts as a crash would): readers change nothing, the next
# writer finishes the rollback its intent names, and no swap dataset is left.

content() { cat "$(sidus path t1)/f"; }
datasets() { zfs list -H -o name -r "$ZFS_DATASET" | sort | tr '\n' ' '; }

setup_store
mkdir -p /tmp/crash-src && echo A >/tmp/crash-src/f
sidus create t1 --from-dir /tmp/crash-src
A=$(sidus snapshot t1 -m A)
echo B >"$(sidus path t1)/f"
B=$(sidus snapshot t1 -m B)

for fp in zfs:rollback-after-clone zfs:rollback-after-rename-out; do
    step "killed at $fp: the next writer finishes the rollback"
    # abort(3): 128 + SIGABRT.
    expect_fail --rc 134 env SIDUS_FAILPOINT="$fp" sidus rollback "t1@$A"
    before=$(datasets)
    sidus --json list >/dev/null
    assert_eq "$(datasets)" "$before" "a reader changed nothing"
    next=$(sidus snapshot t1 -m next 2>&1)
    assert_contains "$next" "interrupted" "the next writer says what it settled"
    assert_eq "$(content)" A "working tree is the copy of A"
    assert_not_contains "$(datasets)" "$ZFS_DATASET/swap/t1" "no swap dataset left"
    ids=$(sidus --json snapshots t1 | jq -r '.[].id' | tr '\n' ' ')
    assert_contains "$ids" "$A " "A kept"
    assert_contains "$ids" "$B " "B kept"
    assert_eq "$(cat "$(sidus path "t1@$B")/f")" B "B still reads back"
    doctor_healthy
    echo B >"$(sidus path t1)/f"
    B=$(sidus snapshot t1 -m B-again)
done
sidus destroy t1
teardown_store

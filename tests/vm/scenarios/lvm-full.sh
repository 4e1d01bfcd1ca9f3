# backends: lvm
# A thin pool that is really full (sidus' own threshold set to 100%, so lvm2
# is the one refusing): snapshot, clone and create fail with a one-line error,
# exit 1, and leave no LV behind.

setup_store
sed -i 's/^max_pool_use_percent = .*/max_pool_use_percent = 100.0/' "$SIDUS_CONFIG"
grep -q '^max_pool_use_percent = 100.0' "$SIDUS_CONFIG" || fail "could not raise the threshold: $(cat "$SIDUS_CONFIG")"

step "a tree with a snapshot"
mkdir -p /tmp/full-src && echo data >/tmp/full-src/file
sidus create t1 --from-dir /tmp/full-src
A=$(sidus snapshot t1 -m before-full)

step "fill the pool to 100% (errors instead of queueing when full)"
lvchange --errorwhenfull y "$VG/$THINPOOL"
lvcreate -q -y -V 4G -T "$VG/$THINPOOL" -n filler
dd if=/dev/zero of="/dev/$VG/filler" bs=4M oflag=direct status=none 2>/dev/null || true
pct=$(lvs --noheadings -o data_percent "$VG/$THINPOOL" | tr -d ' ')
echo "thin pool data use: $pct%"
assert_eq "$pct" 100.00 "pool is full"
lvs_before=$(lvs --noheadings -o lv_name "$VG" | sort)

step "snapshot, clone and create fail cleanly"
for cmd in "snapshot t1 -m on-full-pool" "clone t1@$A c2" "create t2"; do
    # shellcheck disable=SC2086
    expect_fail --rc 1 sidus $cmd
    assert_eq "$(echo "$EF_ERR" | wc -l)" 1 "one-line error for sidus $cmd"
    assert_contains "${EF_ERR,,}" "pool" "the error for sidus $cmd names the pool"
    assert_eq "$(lvs --noheadings -o lv_name "$VG" | sort)" "$lvs_before" "no LV left by sidus $cmd"
done
assert_eq "$(sidus --json snapshots t1 | jq -r '.[].id')" "$A" "no snapshot recorded"
assert_eq "$(sidus --json list | jq -r '.[].name')" t1 "no tree recorded"
grep -E " /var/lib/sidus/lvm/trees/(c2|t2) " /proc/self/mounts && fail "a failed command left a mount"

teardown_store

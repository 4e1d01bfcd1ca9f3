# backends: lvm
# A thin pool near full, then really full. Above lvm.max_pool_use_percent
# (90) sidus refuses snapshot and clone itself, naming the pool, and changes
# nothing; with that threshold at 100% lvm2 is the one refusing: snapshot,
# clone and create fail with a one-line error, exit 1, and leave no LV behind.

snap_ids() { sidus --json snapshots "$1" | jq -r '.[].id'; }

setup_store
step "a tree with a snapshot"
mkdir -p /tmp/full-src && echo data >/tmp/full-src/file
sidus create t1 --from-dir /tmp/full-src
A=$(sidus snapshot t1 -m before-full)

step "snapshot refused above lvm.max_pool_use_percent (90)"
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

step "threshold back to 100%: lvm2 decides"
sed -i 's/^max_pool_use_percent = .*/max_pool_use_percent = 100.0/' "$SIDUS_CONFIG"
grep -q '^max_pool_use_percent = 100.0' "$SIDUS_CONFIG" || fail "could not raise the threshold: $(cat "$SIDUS_CONFIG")"

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

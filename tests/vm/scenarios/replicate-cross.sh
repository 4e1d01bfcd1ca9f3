# backends: lvm
# Cross-backend replication: an LVM thin store replicated to a ZFS store in
# the same VM (a pool on the spare ZFS disk), through the archive stream (no
# native stream in common): IDs, metadata and content (manifest root hashes)
# intact, a receiver killed mid-stream leaves nothing listed, the next
# replicate completes.

setup_store
zpool create -f -O mountpoint=none "$ZPOOL" "$(disk zfsdisk)"
# vm_reset tears down only the scenario's backend: the pool is ours to remove.
trap 'umount -R /srv/sidus-replica 2>/dev/null; zpool destroy -f "$ZPOOL" 2>/dev/null; wipefs -a -q "$(disk zfsdisk)" 2>/dev/null' EXIT
RCONF=/tmp/sidus-replica.toml
rm -f "$RCONF"
sidus --config "$RCONF" init --backend zfs --dataset "$ZPOOL/replica" --mountpoint /srv/sidus-replica
R() { sidus --config "$RCONF" "$@"; }
src=$(mktemp -d)
mkdir -p "$src/etc" "$src/usr/lib"
echo hello >"$src/etc/motd"
head -c 1048576 /dev/urandom >"$src/usr/lib/blob"
ln -s motd "$src/etc/link"

step "LVM primary, three snapshots, replicated to ZFS"
sidus create lab --from-dir "$src"
w=$(sidus path lab)
ids=("$(sidus snapshot lab -m one)")
echo two >"$w/etc/motd"; chmod 600 "$w/etc/motd"
ids+=("$(sidus snapshot lab -m two)")
head -c 2097152 /dev/urandom >"$w/usr/lib/more"
ids+=("$(sidus snapshot lab -m three)")
sidus remote add z --command "sidus --config $RCONF"
sidus remote add z-killed --command "env SIDUS_FAILPOINT=receive:mid-stream sidus --config $RCONF"
out=$(sidus replicate lab --to z --json)
assert_eq "$(jq -r '.[0].sent | length' <<<"$out")" 3 "snapshots sent"
assert_eq "$(jq -r '.[0].verified' <<<"$out")" 3 "each checked against its manifest"
same() {
    assert_eq "$(R snapshots lab --json)" "$(sidus snapshots lab --json)" "same IDs and metadata"
    local id
    for id in $(sidus snapshots lab --json | jq -r '.[].id'); do
        assert_eq "$(R manifest "lab@$id")" "$(sidus manifest "lab@$id")" "same content of $id"
    done
}
same
assert_eq "$(R list --json | jq -r '.[0].backend')" zfs "the replica is on ZFS"

step "a receiver killed mid-stream, then two more snapshots"
echo four >"$w/etc/four"
ids+=("$(sidus snapshot lab -m four)")
expect_fail --rc 1 sidus replicate lab --to z-killed
assert_eq "$(R snapshots lab --json | jq -r '.[-1].id')" "${ids[2]}" "the killed receive is not listed"
head -c 524288 /dev/urandom >"$w/etc/five"
ids+=("$(sidus snapshot lab -m five)")
out=$(sidus replicate lab --to z --json)
assert_eq "$(jq -r '.[0].sent | join(" ")' <<<"$out")" "${ids[3]} ${ids[4]}" "the rest sent"
same
assert_eq "$(sidus remote status z --json | jq -r '.[0].behind')" 0 "up to date"
expect_fail --rc 1 R snapshot lab
assert_contains "$EF_ERR" "read-only replica"
R replica promote lab
assert_eq "$(cat "$(R path lab)/etc/four")" four "the working tree is the newest"
R destroy lab

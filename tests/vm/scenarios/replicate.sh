# backends: zfs
# Replication between two ZFS stores in one VM (two parent datasets of the
# pool), the replica's sidus reached through `remote add --command`: zfs send
# -i | zfs recv with IDs, metadata and content intact (checked by manifest
# root hashes); a receiver killed mid-stream keeps a resumable state that the
# next replicate resumes with `zfs send -t`; after a rollback on the primary
# (its snapshots then in several datasets) the rest goes as archives; the
# replica is read-only until promoted.

setup_store
RCONF=/tmp/sidus-replica.toml
rm -f "$RCONF"
sidus --config "$RCONF" init --backend zfs --dataset "$ZPOOL/replica" --mountpoint /srv/sidus-replica
R() { sidus --config "$RCONF" "$@"; }
src=$(mktemp -d)
mkdir -p "$src/etc" "$src/usr/lib"
echo hello >"$src/etc/motd"
head -c 2097152 /dev/urandom >"$src/usr/lib/blob"
ln -s motd "$src/etc/link"

step "a tree with three snapshots, replicated whole then incrementally"
sidus create lab --from-dir "$src"
w=$(sidus path lab)
ids=()
ids+=("$(sidus snapshot lab -m one)")
echo two >"$w/etc/motd"; chmod 600 "$w/etc/motd"
ids+=("$(sidus snapshot lab -m two)")
head -c 1048576 /dev/urandom >"$w/usr/lib/more"
ids+=("$(sidus snapshot lab -m three)")
sidus manifest "lab@${ids[2]}" >/dev/null    # kept: the replica checks it
sidus remote add r --command "sidus --config $RCONF"
sidus remote add r-killed --command "env SIDUS_FAILPOINT=receive:mid-stream sidus --config $RCONF"
out=$(sidus replicate lab --to r --json)
assert_eq "$(jq -r '.[0].sent | length' <<<"$out")" 3 "snapshots sent"
assert_eq "$(jq -r '.[0].verified' <<<"$out")" 1 "checked against the manifest"
same() {
    assert_eq "$(R snapshots lab --json)" "$(sidus snapshots lab --json)" "same IDs and metadata"
    local id
    for id in $(sidus snapshots lab --json | jq -r '.[].id'); do
        assert_eq "$(R manifest "lab@$id")" "$(sidus manifest "lab@$id")" "same content of $id"
    done
}
same
assert_eq "$(zfs get -H -o value sidus:message "$ZPOOL/replica/trees/lab@${ids[1]}")" two "metadata as ZFS properties"

step "two more, replicated incrementally"
echo four >"$w/etc/four"
ids+=("$(sidus snapshot lab -m four)")
head -c 524288 /dev/urandom >"$w/etc/five"
ids+=("$(sidus snapshot lab -m five)")
st=$(sidus remote status --json)
assert_eq "$(jq -r '.[0].behind' <<<"$st")" 2 "behind"
assert_eq "$(jq -r '.[0].newest_common' <<<"$st")" "${ids[2]}" "newest common"
[[ $(jq -r '.[0].bytes' <<<"$st") -gt 500000 ]] || fail "estimate $(jq -r '.[0].bytes' <<<"$st") bytes for 512 KiB"
out=$(sidus replicate lab --json)
assert_eq "$(jq -r '.[0].sent | join(" ")' <<<"$out")" "${ids[3]} ${ids[4]}" "sent incrementally"
same
assert_eq "$(sidus remote status --json | jq -r '.[0].behind')" 0 "up to date"

step "a receiver killed mid-stream: not listed, resumed by the next replicate"
head -c 8388608 /dev/urandom >"$w/usr/lib/big"
ids+=("$(sidus snapshot lab -m six)")
expect_fail --rc 1 sidus replicate lab --to r-killed
assert_eq "$(R snapshots lab --json | jq -r '.[-1].id')" "${ids[4]}" "the killed receive is not listed"
expect_fail --rc 1 R path "lab@${ids[5]}"
# zfs recv outlives the killed sidus by a moment: it saves the partial state.
for _ in $(seq 1 60); do
    token=$(zfs get -H -o value receive_resume_token "$ZPOOL/replica/trees/lab")
    [[ $token != - ]] && break
    sleep 1
done
[[ $token != - ]] || fail "zfs kept no resumable state"
assert_eq "$(R replica-have lab | jq -r '.trees[0].resume.id')" "${ids[5]}" "offered to resume"
out=$(sidus -v replicate lab --json 2>"$src/log")
grep -q 'zfs send -t' "$src/log" || fail "not resumed with zfs send -t: $(cat "$src/log")"
assert_eq "$(jq -r '.[0].sent | join(" ")' <<<"$out")" "${ids[5]}" "resumed"
same
assert_eq "$(zfs get -H -o value receive_resume_token "$ZPOOL/replica/trees/lab")" - "no partial state left"

step "after a rollback on the primary its snapshots span datasets: the rest goes as archives"
sidus rollback "lab@${ids[3]}" >/dev/null
ids+=("$(sidus snapshots lab --json | jq -r '.[-1].id')")   # the safety snapshot
echo seven >"$w/etc/seven"
ids+=("$(sidus snapshot lab -m seven)")
out=$(sidus replicate lab --json)
assert_eq "$(jq -r '.[0].sent | join(" ")' <<<"$out")" "${ids[6]} ${ids[7]}" "sent after the rollback"
same
echo eight >"$w/etc/eight"
ids+=("$(sidus snapshot lab -m eight)")
assert_eq "$(sidus replicate lab --json | jq -r '.[0].verified')" 1 "an archive, checked"
same

step "read-only until promoted"
expect_fail --rc 1 R snapshot lab
assert_contains "$EF_ERR" "read-only replica"
expect_fail --rc 1 R rollback "lab@${ids[0]}"
expect_fail --rc 125 R run lab -- true
R replica promote lab
assert_eq "$(cat "$(R path lab)/etc/four")" four "the working tree is the newest"
R snapshot lab -m "mine now" >/dev/null
expect_fail --rc 1 sidus replicate lab
assert_contains "$EF_ERR" "of its own"
R destroy lab

# backends: zfs lvm
# Living with many snapshots on the real storage: a pin with a label works as a
# REF and survives delete and prune; prune keeps what its rules and the
# protections keep; diff sees file and Debian package changes.

setup_store
src=$(mktemp -d)
mkdir -p "$src/etc" "$src/usr/bin" "$src/var/lib/dpkg"
echo hello >"$src/etc/motd"
echo keep >"$src/etc/perm"
ln -s /usr/bin/python3.11 "$src/usr/bin/python3"
head -c 1048576 /dev/urandom >"$src/usr/lib.so"   # real extents, shared by snapshots
status() { printf 'Package: curl\nStatus: install ok installed\nArchitecture: amd64\nVersion: %s\n\n' "$1"; }
status 7.88.1-10+deb12u5 >"$src/var/lib/dpkg/status"

step "three snapshots, the middle one differing in known ways"
sidus create lab --from-dir "$src"
a=$(sidus snapshot lab -m one)
w=$(sidus path lab)
echo changed >"$w/etc/motd"
chmod 600 "$w/etc/perm"
ln -sfn /usr/bin/python3.12 "$w/usr/bin/python3"
echo new >"$w/etc/added"
printf X | dd of="$w/usr/lib.so" bs=1 seek=600000 conv=notrunc status=none
status 7.88.1-10+deb12u12 >"$w/var/lib/dpkg/status"
b=$(sidus snapshot lab -m two)
c=$(sidus snapshot lab -m three)

step "pin with a label; the label is a REF"
sidus pin "lab@$a" --name paper -m "the paper"
assert_eq "$(sidus show lab@paper --json | jq -r .id)" "$a" "label resolves"
assert_eq "$(sidus pins --json | jq -r '.[0].label')" paper
expect_fail --rc 1 sidus delete lab@paper
assert_contains "$EF_ERR" "it is pinned as 'paper'"
expect_fail --rc 1 sidus show lab@no-such-label
assert_contains "$EF_ERR" "no snapshot or pin label 'no-such-label'"

step "prune keeps the newest and the pinned one, says why"
plan=$(sidus prune lab --keep-last 1 --dry-run --json)
assert_eq "$(jq -r '[.snapshots[] | select(.keep | not) | .id] | join(" ")' <<<"$plan")" "$b" "would go"
assert_eq "$(jq -r ".snapshots[] | select(.id == \"$a\") | .protected_by[0].label" <<<"$plan")" paper
assert_eq "$(sidus snapshots lab --json | jq length)" 3 "dry run deleted nothing"
sidus prune lab --keep-last 1
assert_eq "$(sidus snapshots lab --json | jq -r '[.[].id] | join(" ")')" "$a $c" "after prune"

step "diff of files and packages"
d=$(sidus diff lab@paper lab@latest --json)
what() { jq -r ".files[] | select(.path == \"$1\") | \"\(.change) \(.what // [] | join(\",\"))\"" <<<"$d"; }
assert_eq "$(what /etc/motd)" "modified size,content"
assert_eq "$(what /etc/perm)" "modified mode"
assert_eq "$(what /usr/bin/python3)" "modified target"
assert_eq "$(what /etc/added)" "added "
assert_eq "$(what /usr/lib.so)" "modified content"
printf Y | dd of="$w/usr/lib.so" bs=1 seek=700000 conv=notrunc status=none   # not synced
assert_contains "$(sidus diff lab@latest)" "/usr/lib.so"
p=$(sidus diff lab@paper lab@latest --packages --json)
assert_eq "$(jq -r '.packages.upgraded[0] | "\(.name) \(.old) \(.new)"' <<<"$p")" \
    "curl 7.88.1-10+deb12u5 7.88.1-10+deb12u12"
assert_contains "$(sidus diff lab@paper)" "1 added, 0 removed, 5 modified"

step "diff of a moved directory and of a new hard link"
# On ZFS both come from `zfs diff` (the moved directory is one change there);
# the hard link makes sidus walk the trees instead, with the same answer.
mkdir -p "$w/opt/pkg/sub"
echo a >"$w/opt/pkg/a"; echo b >"$w/opt/pkg/sub/b"
m1=$(sidus snapshot lab -m before-move)
mv "$w/opt/pkg" "$w/opt/moved"
echo c >"$w/opt/moved/a"
m2=$(sidus snapshot lab -m moved)
errf=$(mktemp)
d=$(sidus -v diff "lab@$m1" "lab@$m2" --json 2>"$errf")
assert_eq "$(jq -r '[.files[] | "\(.change) \(.path)"] | join(",")' <<<"$d")" \
    "added /opt/moved,added /opt/moved/a,added /opt/moved/sub,added /opt/moved/sub/b,removed /opt/pkg,removed /opt/pkg/a,removed /opt/pkg/sub,removed /opt/pkg/sub/b" \
    "moved directory, entry by entry"
if [[ $SIDUS_TEST_BACKEND == zfs ]]; then
    assert_contains "$(<"$errf")" "exec: zfs diff -H -F" "zfs diff was asked"
    # Newer to older: zfs diff the other way round, inverted.
    d=$(sidus diff "lab@$m2" "lab@$m1" --json)
    assert_eq "$(jq -r '[.files[] | select(.path == "/opt/pkg" or .path == "/opt/moved") | "\(.change) \(.path)"] | join(",")' <<<"$d")" \
        "removed /opt/moved,added /opt/pkg" "reversed"
else
    assert_not_contains "$(<"$errf")" "zfs diff"
fi
ln "$w/opt/moved/a" "$w/opt/moved/a-link"
d=$(sidus -v diff "lab@$m2" --json 2>"$errf")
assert_eq "$(jq -r '[.files[] | "\(.change) \(.path)"] | join(",")' <<<"$d")" \
    "added /opt/moved/a-link" "the new name of a hard link"
rm -f "$errf" "$w/opt/moved/a-link"

step "unpin, then the snapshot can go"
sidus unpin paper
sidus delete "lab@$a"
assert_eq "$(sidus log lab --json | jq -r '.[0].action')" delete
rm -rf "$src"
# (vm_reset tears the store down after every scenario.)

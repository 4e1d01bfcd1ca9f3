# backends: zfs lvm
# sidus diff on the real storage for what a walk and `zfs diff` see
# differently: a moved directory (one change for zfs diff), a new hard link
# (sidus walks the trees then), and newer-to-older order. The rest of diff is
# in the contract suite (tests/contract_history.rs).

setup_store
src=$(mktemp -d)
mkdir -p "$src/etc"
echo hello >"$src/etc/motd"
sidus create lab --from-dir "$src"
w=$(sidus path lab)

step "diff of a moved directory and of a new hard link"
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
rm -rf "$errf" "$w/opt/moved/a-link" "$src"
doctor_healthy
teardown_store

# backends: btrfs zfs lvm
# sidus publish over the real kernel NFS server, read back over loopback NFSv3:
# exact read-only content; a client mount and an open file survive publishing a
# newer ID and an nfsd restart + `sidus restore` (stable fsid); unpublish
# refusals; a tree without a kernel is refused; the node's init-bottom script
# puts a writable tmpfs overlay on the NFS root; an NFSv4.2 client with a file
# open blocks unpublish and is named. Prints BENCH lines: time from
# `sidus publish` start to the boot entry in place.

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# read_retry FILE: cat FILE, retrying for 30 s (a soft NFS mount waits out a
# server restart, or the grace period, with EIO/ETIMEDOUT, never with ESTALE).
read_retry() {
    local i out
    for i in $(seq 1 30); do
        if out=$(cat "$1" 2>/tmp/read_err); then echo "$out"; return 0; fi
        grep -q 'Stale file handle' /tmp/read_err && fail "ESTALE reading $1"
        sleep 1
    done
    fail "cannot read $1: $(cat /tmp/read_err)"
}

setup_store
cat >>"$SIDUS_CONFIG" <<EOF

[publish]
root = "/srv/sidus"
boot_root = "/srv/tftp"
server = "127.0.0.1"
clients = ["127.0.0.1"]
EOF

step "a tree with a fake kernel, prepared for diskless nodes"
src=/tmp/publish-src
rm -rf "$src"
mkdir -p "$src/boot" "$src/etc" "$src/usr/share/initramfs-tools" "$src/root"
printf 'one\nline two\n' >"$src/etc/motd"
echo secret >"$src/root/secret" && chmod 600 "$src/root/secret"
echo K6 >"$src/boot/vmlinuz-6.1.0-26-amd64"
echo I6 >"$src/boot/initrd.img-6.1.0-26-amd64"
echo K5 >"$src/boot/vmlinuz-6.1.0-9-amd64"
echo I5 >"$src/boot/initrd.img-6.1.0-9-amd64"
sidus create lab --from-dir "$src"
sidus prepare-node lab
A=$(sidus snapshot lab -m one)

step "publish lab@$A"
t0=$(date +%s%N)
out=$(sidus publish "lab@$A" --json)
wall=$(ms_since "$t0")
jq_fields "$out" .boot_entry_ms .exports .fsid
echo "BENCH $SIDUS_TEST_BACKEND publish (first ID): ${wall} ms wall for the whole command, boot entry in place after ${JQ[0]} ms"
assert_eq "${JQ[1]}" applied
fsid_a=${JQ[2]}
assert_contains "$(exportfs -v)" "/srv/sidus/lab/$A"
assert_contains "$(cat /etc/exports.d/sidus.exports)" "fsid=$fsid_a"
assert_eq "$(cat "/srv/tftp/sidus/lab/$A/vmlinuz")" K6 "newest kernel copied"
assert_contains "$(cat /srv/tftp/sidus/lab.ipxe)" "nfsroot=127.0.0.1:/srv/sidus/lab/$A,ro sidus.tree=lab sidus.snapshot=$A"

step "mount it over NFS: exactly the snapshot's content, read-only"
mkdir -p /mnt/a
mount -t nfs -o vers=3,nolock,soft,timeo=10,retrans=3 "127.0.0.1:/srv/sidus/lab/$A" /mnt/a
snap=$(sidus path "lab@$A")
listing() { (cd "$1" && find . -printf '%p %y %m %U:%G %s %l\n' | sort && find . -type f -exec md5sum {} + | sort); }
assert_eq "$(listing /mnt/a)" "$(listing "$snap")" "NFS view differs from the snapshot"
assert_eq "$(cat /mnt/a/root/secret)" secret "no_root_squash: root reads 0600 files"
expect_fail touch /mnt/a/etc/new
assert_contains "$EF_ERR" "Read-only file system"
exec 3</mnt/a/etc/motd

step "publish a newer ID with the old one mounted and a file held open"
printf 'two\n' >"$(sidus path lab)/etc/motd"
B=$(sidus snapshot lab -m two)
t0=$(date +%s%N)
out=$(sidus publish lab --json)
wall=$(ms_since "$t0")
jq_fields "$out" .boot_entry_ms .id .previous
echo "BENCH $SIDUS_TEST_BACKEND publish (switch to a newer ID): ${wall} ms wall for the whole command, boot entry in place after ${JQ[0]} ms"
assert_eq "${JQ[1]}" "$B"
assert_eq "${JQ[2]}" "$A"
read -r first <&3 || fail "reading the held-open file failed"
assert_eq "$first" one "held-open file after the switch"
assert_eq "$(read_retry /mnt/a/etc/motd | head -n1)" one "old mount after the switch"
assert_contains "$(cat /srv/tftp/sidus/lab.ipxe)" "sidus.snapshot=$B"
assert_contains "$(cat /srv/tftp/pxelinux.cfg/sidus-lab)" "KERNEL sidus/lab/$B/vmlinuz"
assert_contains "$(exportfs -v)" "/srv/sidus/lab/$A"
assert_contains "$(exportfs -v)" "/srv/sidus/lab/$B"
st=$(sidus status lab --json)
jq_fields "$st" '.trees[0].current' '[.trees[0].exported[] | select(.mounted and .in_kernel)] | length' \
    ".trees[0].exported[] | select(.id == \"$A\") | .clients | join(\",\")"
assert_eq "${JQ[0]}" "$B"
assert_eq "${JQ[1]}" 2
assert_eq "${JQ[2]}" 127.0.0.1
sidus status

step "restart nfsd, lose the served mounts (a reboot), sidus restore"
exportfs -ua
rpc.nfsd 0
umount "/srv/sidus/lab/$A" "/srv/sidus/lab/$B"
rpc.nfsd 8
expect_fail --rc 1 sidus doctor
assert_contains "$EF_OUT" "lab@$A is published but not mounted at /srv/sidus/lab/$A"
assert_contains "$EF_OUT" "fix: sidus restore"
out=$(sidus restore --json)
jq_fields "$out" '.served | length' .exports
assert_eq "${JQ[0]}" 2
assert_eq "${JQ[1]}" applied
read -r second <&3 || fail "reading the held-open file after restore failed: $?"
assert_eq "$second" "line two" "held-open file after nfsd restart + restore"
assert_eq "$(read_retry /mnt/a/etc/motd | head -n1)" one "old client mount after nfsd restart + restore"

step "negative control: the same path under another fsid is ESTALE; restore heals it"
sed -i "s/fsid=$fsid_a/fsid=4242/" /etc/exports.d/sidus.exports
exportfs -ra
exportfs -f
echo 3 >/proc/sys/vm/drop_caches
estale=
for i in $(seq 1 15); do
    if ! cat /mnt/a/etc/motd >/dev/null 2>/tmp/read_err; then
        grep -q 'Stale file handle' /tmp/read_err && { estale=1; break; }
    fi
    echo 3 >/proc/sys/vm/drop_caches
    sleep 1
done
if [[ -z $estale ]]; then
    echo "DIAG: cat: $(cat /tmp/read_err)"; exportfs -v; cat /proc/net/rpc/nfsd.fh/content; cat /proc/net/rpc/nfsd.export/content
    ls -la /mnt/a/etc; cat /var/lib/nfs/etab
    fail "another fsid did not give ESTALE: the test cannot tell a stable fsid from luck"
fi
sidus restore >/dev/null
assert_contains "$(cat /etc/exports.d/sidus.exports)" "fsid=$fsid_a"
assert_eq "$(read_retry /mnt/a/etc/motd | head -n1)" one "readable again with sidus's fsid"
exec 3<&-

step "unpublish: refused for the current ID and for a mounted one"
expect_fail --rc 1 sidus unpublish "lab@$B"
assert_contains "$EF_ERR" "it is the published snapshot nodes boot"
expect_fail --rc 1 sidus unpublish "lab@$A"
assert_contains "$EF_ERR" "NFS clients still mount it (127.0.0.1)"
umount /mnt/a
step "unpublish: refused while an NFSv4.2 client has a file open on it, naming the client"
nfs_mount "/srv/sidus/lab/$A" /mnt/a4 vers=4.2
exec 4</mnt/a4/etc/motd
expect_fail --rc 1 sidus unpublish "lab@$A"
assert_contains "$EF_ERR" "NFS clients still mount it (127.0.0.1 (NFSv4 'Linux NFSv4."
exec 4<&-
umount /mnt/a4
# nfsd drops the client's open state once the client has closed and unmounted.
for _ in $(seq 1 30); do
    sidus unpublish "lab@$A" 2>/tmp/unpub_err && break
    grep -q "NFS clients still mount it" /tmp/unpub_err || fail "unpublish: $(cat /tmp/unpub_err)"
    sleep 1
done
assert_not_contains "$(exportfs -v)" "/srv/sidus/lab/$A"
assert_contains "$(exportfs -v)" "/srv/sidus/lab/$B"
[[ ! -e /srv/sidus/lab/$A ]] || fail "mount point of an unpublished ID left behind"

step "rollback is refused without history; a tree without a kernel is refused"
expect_fail --rc 1 sidus publish --rollback lab
mkdir -p /tmp/bare/etc /tmp/bare/boot && echo x >/tmp/bare/etc/motd
sidus create bare --from-dir /tmp/bare
sidus snapshot bare >/dev/null
expect_fail --rc 1 sidus publish bare
assert_contains "$EF_ERR" "its /boot has no kernel"
assert_not_contains "$(cat /etc/exports.d/sidus.exports)" "/bare/"

step "node side: the init-bottom script overlays the NFS root with tmpfs"
mkdir -p /tmp/node
mount -t nfs -o vers=3,nolock,soft "127.0.0.1:/srv/sidus/lab/$B" /tmp/node
cp /tmp/node/etc/initramfs-tools/scripts/init-bottom/sidus /tmp/init-bottom
grep '^kernel ' /srv/tftp/sidus/lab.ipxe >/tmp/cmdline
rootmnt=/tmp/node SIDUS_CMDLINE=/tmp/cmdline SIDUS_NODE_FILE=/tmp/sidus-node \
    SIDUS_OVERLAY_DIR=/tmp sh /tmp/init-bottom
assert_eq "$(cat /tmp/sidus-node)" "lab@$B $(sidus manifest "lab@$B")" "/run/sidus-node content"
echo written-on-node >/tmp/node/etc/motd
assert_eq "$(cat /tmp/node/etc/motd)" written-on-node "overlay is writable"
assert_eq "$(cat "$(sidus path "lab@$B")/etc/motd")" two "snapshot untouched"
assert_eq "$(findmnt -n -o FSTYPE /tmp/node)" overlay
assert_eq "$(findmnt -n -o FSTYPE /tmp/node/media/sidus-ro)" nfs
umount -R /tmp/node

doctor_healthy
teardown_store

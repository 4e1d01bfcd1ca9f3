# backends: zfs
# Who may mount a published ID over the real kernel NFS server: only the hosts
# `[publish] clients` lists. publish refuses while it is unset (`sidus init
# --clients` sets it) and refuses a snapshot holding an SSH host key. With
# clients = ["127.0.0.1"], the export mounts from 127.0.0.1 and is refused,
# over NFSv3 and NFSv4, from a second address on the loopback (10.98.0.2) and
# from a network namespace at 10.99.0.2 (a veth pair to 10.99.0.1). Adding
# both to clients and publishing again lets them mount: the refusals came from
# clients, not from the network.

setup_store
cat >>"$SIDUS_CONFIG" <<EOF

[publish]
root = "/srv/sidus"
boot_root = "/srv/tftp"
server = "127.0.0.1"
EOF

cleanup_net() {
    ip netns del outsider 2>/dev/null || true
    ip link del sidus-h 2>/dev/null || true
    ip addr del 10.98.0.2/32 dev lo 2>/dev/null || true
}
trap cleanup_net EXIT
cleanup_net

# try_mount WHERE SERVER VERS: mounts SERVER:$export in a private mount
# namespace (of the network namespace WHERE, or "host"), reads etc/motd and
# unmounts; prints what it read, or fails with mount's message.
try_mount() {
    local run=()
    [[ $1 == host ]] || run=(ip netns exec "$1")
    "${run[@]}" unshare -m sh -c '
        mkdir -p /mnt/sec && mount -t nfs -o "vers=$2,nolock,soft,timeo=10,retrans=2,retry=0" "$1:$3" /mnt/sec &&
        cat /mnt/sec/etc/motd && umount /mnt/sec' sh "$2" "$3" "$export"
}

step "a tree with a fake kernel and an SSH host private key"
src=/tmp/security-src
rm -rf "$src"
mkdir -p "$src/boot" "$src/etc/ssh"
echo "only for allowed clients" >"$src/etc/motd"
echo K >"$src/boot/vmlinuz-6.1.0-26-amd64"
echo I >"$src/boot/initrd.img-6.1.0-26-amd64"
echo PRIVATE >"$src/etc/ssh/ssh_host_ed25519_key"
sidus create lab --from-dir "$src"
A=$(sidus snapshot lab -m with-key)

step "publish refuses while clients is unset, writing nothing"
expect_fail --rc 1 sidus publish lab
assert_contains "$EF_ERR" "publish.clients is not set"
assert_contains "$EF_ERR" 'clients = ["10.0.0.0/24"]'
[[ ! -e /etc/exports.d/sidus.exports ]] || fail "exports file written while clients is unset"
assert_not_contains "$(exportfs -v)" /srv/sidus

step "sidus init --clients sets it; a bad entry is refused"
expect_fail --rc 2 sidus init --clients 127.0.0.1 10.0.0.0/33
assert_contains "$EF_ERR" "'10.0.0.0/33' is not a client"
sidus init --clients 127.0.0.1

step "a snapshot holding an SSH host key is refused, naming it"
expect_fail --rc 1 sidus publish "lab@$A"
assert_contains "$EF_ERR" "/etc/ssh/ssh_host_ed25519_key (SSH host private key)"
assert_not_contains "$(exportfs -v)" /srv/sidus
rm "$(sidus path lab)/etc/ssh/ssh_host_ed25519_key"
B=$(sidus snapshot lab -m without-key)
sidus publish "lab@$B"
export=/srv/sidus/lab/$B
assert_contains "$(exportfs -v)" "$export"

step "the allowed client mounts it (NFSv3 and NFSv4)"
assert_eq "$(try_mount host 127.0.0.1 3)" "only for allowed clients"
assert_eq "$(try_mount host 127.0.0.1 4.2)" "only for allowed clients"

step "a second address on the loopback is refused"
ip addr add 10.98.0.2/32 dev lo
assert_contains "$(ip route get 10.98.0.2)" "src 10.98.0.2" "the mount would come from another address"
for v in 3 4.2; do
    expect_fail try_mount host 10.98.0.2 "$v"
    assert_contains "$EF_ERR" "access denied by server"
done

step "a network namespace at 10.99.0.2 is refused"
ip netns add outsider
ip link add sidus-h type veth peer name sidus-o
ip link set sidus-o netns outsider
ip addr add 10.99.0.1/24 dev sidus-h
ip link set sidus-h up
ip netns exec outsider ip addr add 10.99.0.2/24 dev sidus-o
ip netns exec outsider ip link set sidus-o up
ip netns exec outsider ip link set lo up
for v in 3 4.2; do
    expect_fail try_mount outsider 10.99.0.1 "$v"
    assert_contains "$EF_ERR" "access denied by server"
done
assert_not_contains "$(cat /var/lib/nfs/rmtab 2>/dev/null)" "10.99.0.2" "a refused client is in rmtab"

step "listed in clients, both mount: the refusals were clients'"
# init adds a missing list and refuses to replace one: the admin edits it.
expect_fail --rc 1 sidus init --clients 127.0.0.1 10.98.0.2 10.99.0.0/24
assert_contains "$EF_ERR" "publish.clients is"
sed -i 's|^clients = .*|clients = ["127.0.0.1", "10.98.0.2", "10.99.0.0/24"]|' "$SIDUS_CONFIG"
out=$(sidus publish "lab@$B" 2>&1)
assert_contains "$out" "already published"
step "exports now: $(grep -v '^#' /etc/exports.d/sidus.exports)"
assert_contains "$(cat /etc/exports.d/sidus.exports)" "10.99.0.0/24(ro,"
for v in 3 4.2; do
    assert_eq "$(try_mount host 10.98.0.2 "$v")" "only for allowed clients" "loopback 10.98.0.2, NFS $v"
    assert_eq "$(try_mount outsider 10.99.0.1 "$v")" "only for allowed clients" "namespace, NFS $v"
done

cleanup_net
teardown_store

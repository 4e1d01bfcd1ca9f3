# backends: zfs
# netboot 1
# timeout: 1200
# Two boot servers and a diskless node. The primary, boot1 (10.77.0.1), is
# sidus with $SIDUS_CONFIG run in network namespace boot1; boot2 (10.77.0.2)
# is this VM's own network stack: sshd (keys made here), nfsd, DHCP and TFTP,
# and sidus with its default config, on another dataset of the pool. (One
# kernel for both, so one TCG VM: the stores, addresses and NFS servers are
# separate; the node's VM is a second one on the socket network.)
# boot1 replicates through ssh:// to boot2: 3 snapshots, then 2 incrementally,
# then one killed with kill -9 mid-way and replicated again; IDs, metadata and
# content match. Then the node tree is published on both, boot1 goes down,
# and the node, given boot1's entry (a copy on boot2's TFTP), finds boot1
# unreachable and boots the same ID from boot2 through the entry's next server.

NET=10.77.0
report=/tmp/node-report
B_CONF=/etc/sidus/sidus.toml
nodedisk=$(disk nodetree)
# A bridge an earlier scenario in this VM left would hold the node's NIC.
ip link del br0 2>/dev/null || true
mapfile -t nics < <(ip -o link show | awk -F': ' '$2 != "lo" && $2 != "br0" && $2 !~ /^v1/ { sub(/@.*/, "", $2); print $2 }')
((${#nics[@]} >= 1)) || fail "no network interface for the node (tests/vm/run gives '# netboot 1' VMs one)"

setup_store
cat >>"$SIDUS_CONFIG" <<EOF

[publish]
root = "/srv/sidus"
boot_root = "/srv/tftp-boot1"
exports_file = "/tmp/boot1.exports"
apply_exports = false
server = "$NET.1"
clients = ["$NET.0/24"]
kernel_cmdline_extra = "ip=dhcp console=ttyS0 panic=-1 init=/usr/local/sbin/sidus-node-report"
EOF
rm -f "$B_CONF"
sidus --config "$B_CONF" init --backend zfs --dataset "$ZPOOL/boot2" --mountpoint /srv/store-boot2 >/dev/null
cat >>"$B_CONF" <<EOF

[publish]
root = "/srv/sidus-boot2"
boot_root = "/srv/tftp"
server = "$NET.2"
clients = ["$NET.0/24", "127.0.0.1"]
kernel_cmdline_extra = "ip=dhcp console=ttyS0 panic=-1 init=/usr/local/sbin/sidus-node-report"
EOF
P() { nsenter --net=/run/netns/boot1 sidus "$@"; }   # boot1
B() { sidus --config "$B_CONF" "$@"; }               # boot2

cleanup() {
    kill "$(cat /run/sidus-dnsmasq.pid 2>/dev/null)" "$(cat /run/sidus-sshd.pid 2>/dev/null)" \
        "${listener:-}" 2>/dev/null || true
    ip netns del boot1 2>/dev/null || true
    ip link del br0 2>/dev/null || true
    umount /mnt/fo 2>/dev/null || true
    rm -rf "$B_CONF" /etc/exports.d/failover.exports /srv/tftp-boot1 /srv/tftp/menu /tmp/boot1.exports /root/.ssh
}
trap cleanup EXIT

step "network: boot2 on a bridge with the node's NIC, boot1 in its namespace on a veth"
ip link add br0 type bridge
ip link set "${nics[0]}" master br0
ip link set "${nics[0]}" up
ip addr add "$NET.2/24" dev br0
ip link set br0 up
ip netns add boot1
ip link add v1 type veth peer name v1p
ip link set v1p master br0
ip link set v1p up
ip link set v1 netns boot1
ip -n boot1 addr add "$NET.1/24" dev v1
ip -n boot1 link set v1 up
ip -n boot1 link set lo up

step "sshd on boot2, a key for boot1's root"
mkdir -p /run/sshd /root/.ssh
chmod 700 /root/.ssh
[[ -f /etc/ssh/ssh_host_ed25519_key ]] || ssh-keygen -q -A
ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519
cp /root/.ssh/id_ed25519.pub /root/.ssh/authorized_keys
echo "$NET.2 $(cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub)" >/root/.ssh/known_hosts
/usr/sbin/sshd -o ListenAddress="$NET.2" -o PidFile=/run/sidus-sshd.pid -o PermitRootLogin=prohibit-password
for _ in $(seq 1 20); do
    nsenter --net=/run/netns/boot1 ssh -o BatchMode=yes "root@$NET.2" true 2>/dev/null && break
    sleep 1
done
P remote add boot2 "ssh://root@$NET.2" --server "$NET.2"
assert_contains "$(P remote list)" " $NET.2 " "remote list shows the server"

same() {  # TREE: the same IDs, metadata and content on both
    assert_eq "$(B snapshots "$1" --json)" "$(P snapshots "$1" --json)" "same IDs and metadata of $1"
    local id
    for id in $(P snapshots "$1" --json | jq -r '.[].id'); do
        assert_eq "$(B manifest "$1@$id")" "$(P manifest "$1@$id")" "same content of $1@$id"
    done
}

step "three snapshots through ssh://, then two more incrementally"
src=$(mktemp -d)
mkdir -p "$src/etc"
echo one >"$src/etc/motd"
P create lab --from-dir "$src" >/dev/null
w=$(P path lab)
ids=("$(P snapshot lab -m one)")
echo two >"$w/etc/motd"; chmod 600 "$w/etc/motd"
ids+=("$(P snapshot lab -m two)")
head -c 1048576 /dev/urandom >"$w/etc/blob"
ids+=("$(P snapshot lab -m three)")
out=$(P replicate lab --to boot2 --json)
assert_eq "$(jq -r '.[0].sent | length' <<<"$out")" 3 "snapshots sent"
same lab
echo four >"$w/etc/four"
ids+=("$(P snapshot lab -m four)")
echo five >"$w/etc/five"
ids+=("$(P snapshot lab -m five)")
out=$(P replicate lab --json)
assert_eq "$(jq -r '.[0].sent | join(" ")' <<<"$out")" "${ids[3]} ${ids[4]}" "sent incrementally"
same lab

step "kill -9 of the replication mid-way, then again: complete and consistent"
head -c 67108864 /dev/urandom >"$w/etc/big"
ids+=("$(P snapshot lab -m six)")
nsenter --net=/run/netns/boot1 sidus replicate lab --to boot2 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    pgrep -f "zfs recv.*$ZPOOL/boot2" >/dev/null && break
    sleep 0.2
done
pgrep -f "zfs recv.*$ZPOOL/boot2" >/dev/null || fail "no zfs recv on boot2 to interrupt"
sleep 2
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
for _ in $(seq 1 60); do
    pgrep -f 'replica-receive|zfs recv|zfs send' >/dev/null || break
    sleep 1
done
assert_eq "$(B snapshots lab --json | jq -r '.[-1].id')" "${ids[4]}" "the cut transfer is not listed on boot2 (if it is, it ended before the kill)"
out=$(P replicate lab --json)
assert_eq "$(jq -r '.[0].sent | join(" ")' <<<"$out")" "${ids[5]}" "replicated again"
same lab
assert_eq "$(zfs get -H -o value receive_resume_token "$ZPOOL/boot2/trees/lab")" - "no partial state left"
B doctor >/dev/null || fail "boot2's store is not healthy: $(B doctor 2>&1)"

step "the node tree on both servers, published on both: each entry lists both"
mkdir -p "$src/node"
tar -xpf "$nodedisk" --numeric-owner --xattrs -C "$src/node"
echo R >"$src/node/etc/sidus-test-version"
P create node --from-dir "$src/node" >/dev/null
rm -rf "$src"
ID=$(P snapshot node -m R)
P replicate node --to boot2 >/dev/null
P publish "node@$ID" >/dev/null
fsid=$(grep -o 'fsid=[^,)]*' /tmp/boot1.exports | sort -u)

step "an NFSv3 client of boot1's node@$ID reads on when boot2's copy takes over"
# One nfsd stands for the address both servers hold in turn: first it exports
# boot1's dataset, then only boot2's, with the same fsid; the client is
# never told. (noac, lookupcache=none and dropped caches: every read asks.)
echo "/srv/sidus/node/$ID 127.0.0.1(ro,no_root_squash,no_subtree_check,$fsid)" >/etc/exports.d/failover.exports
exportfs -ra
nfs_mount "/srv/sidus/node/$ID" /mnt/fo vers=3,nolock,noac,lookupcache=none
exec 5</mnt/fo/etc/sidus-test-version
before=$(md5sum </mnt/fo/usr/bin/bash)
rm /etc/exports.d/failover.exports
exportfs -ra
P publish "node@$ID" --on boot2
exportfs -f
echo 3 >/proc/sys/vm/drop_caches
assert_contains "$(exportfs -v)" "/srv/sidus-boot2/node/$ID"
assert_not_contains "$(exportfs -v)" "/srv/sidus/node/$ID"
# Reported, not asserted: what an NFSv3 client sees (README, "Several
# servers in one boot entry"). The root of a ZFS snapshot mount has an inode
# number derived from its objset ID, which differs on the replica; files
# keep their object numbers.
try() { if out=$("$@" 2>&1); then echo ok; else echo "error (${out##*: })"; fi; }
fo="open file: $(try cat /proc/self/fd/5); read: $(try md5sum /mnt/fo/usr/bin/bash)"
fo+="; lookup: $(try cat /mnt/fo/etc/sidus-test-version); root listing: $(try ls /mnt/fo)"
fo+="; kernel: $(dmesg | grep -c 'fileid changed' || true) 'fileid changed'"
echo "BENCH replicate-servers: NFSv3 client across the switch to boot2's copy: $fo"
exec 5<&-
umount /mnt/fo || umount -l /mnt/fo
e1=$(cat /srv/tftp-boot1/sidus/node.ipxe)
e2=$(cat /srv/tftp/sidus/node.ipxe)
assert_contains "$e1" "tried in this order: $NET.1, $NET.2." "boot1's entry"
assert_contains "$e2" "tried in this order: $NET.2, $NET.1." "boot2's entry"
assert_contains "$e1" "nfsroot=$NET.2:/srv/sidus-boot2/node/$ID,ro"
assert_eq "$(grep -o 'fsid=[^,)]*' /etc/exports.d/sidus.exports | sort -u)" "$fsid" "the same fsid"

step "boot1 goes down; the node gets boot1's entry and boots $ID from boot2"
ip -n boot1 link set v1 down
mkdir -p /srv/tftp/menu
cp /srv/tftp-boot1/sidus/node.ipxe /srv/tftp/menu/node.ipxe
dnsmasq --port=0 --interface=br0 --bind-interfaces --except-interface=lo \
    --dhcp-range="$NET.50,$NET.99,1h" \
    --dhcp-userclass=set:ipxe,iPXE --dhcp-boot=tag:ipxe,menu/node.ipxe --enable-tftp --tftp-root=/srv/tftp \
    --pid-file=/run/sidus-dnsmasq.pid --log-dhcp --log-facility=/tmp/dnsmasq.log
: >"$report"
(while :; do busybox nc -l -p 7777 >>"$report" || sleep 1; done) &
listener=$!
echo "SIDUS-NODE-START 0"
t0=$SECONDS
line=
for _ in $(seq 1 900); do
    line=$(grep -a 'SIDUS-NODE-BOOTED' "$report" | tail -n 1 || true)
    [[ -n $line ]] && break
    sleep 1
done
[[ -n $line ]] || { tail -n 30 /tmp/dnsmasq.log; fail "the node reported nothing after $((SECONDS - t0)) s"; }
echo "BENCH replicate-servers: the node booted from the second server $((SECONDS - t0)) s after its VM started"
assert_contains "$line" "SIDUS-NODE-BOOTED node@$ID " "the same ID"
assert_contains "$line" " lower=$NET.2:/srv/sidus-boot2/node/$ID " "its root from boot2"
assert_contains "$line" " version=R "
grep -q "sent /srv/tftp/sidus/node/$ID/vmlinuz" /tmp/dnsmasq.log ||
    fail "boot2 did not serve the kernel: $(grep -i tftp /tmp/dnsmasq.log | tail -n 5)"
echo "SIDUS-NODE-STOP 0"
teardown_store

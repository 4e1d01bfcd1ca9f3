# backends: zfs
# netboot 2
# timeout: 1200
# Two diskless node VMs network-boot what sidus published, in two groups, as
# a staged rollout would: their iPXE firmware gets an address and the tree's
# iPXE script from dnsmasq (DHCP + TFTP) in this VM; the script sends each
# node of the inventory on to its node entry and its group's entry, which
# names the ID. Each boots the snapshot's kernel and initrd (made by `sidus
# create --debootstrap` on the host, tests/vm/node/build), mounts the export
# over NFSv3 with a tmpfs overlay, and its PID 1 says over TCP (and on its
# console) which TREE@ID it runs. tests/vm/run starts node I when this prints
# SIDUS-NODE-START I (SIDUS-NODE-STOP I cuts its power), each on its own
# socket network; this VM bridges them. Then an NFSv4.2 client (loopback,
# named by nfs.nfs4_unique_id) on an old ID is seen, and blocks unpublish.

NET=10.77.0
report=/tmp/node-report
CANARY_MAC=52:54:00:77:00:02 REST_MAC=52:54:00:77:00:03 REST_IP=$NET.60

nodedisk=$(disk nodetree)
mapfile -t nics < <(ip -o link show | awk -F': ' '$2 != "lo" { print $2 }')
((${#nics[@]} >= 2)) || fail "${#nics[@]} network interfaces, expected 2 (tests/vm/run gives '# netboot 2' VMs one per node)"
setup_store
cat >>"$SIDUS_CONFIG" <<EOF

[publish]
root = "/srv/sidus"
boot_root = "/srv/tftp"
server = "$NET.1"
clients = ["$NET.0/24", "127.0.0.1"]
kernel_cmdline_extra = "ip=dhcp console=ttyS0 panic=-1 init=/usr/local/sbin/sidus-node-report"
EOF

step "the node tree into the store: snapshots A and B"
src=/tmp/node-src
mkdir -p "$src"
tar -xpf "$nodedisk" --numeric-owner --xattrs -C "$src"
echo A >"$src/etc/sidus-test-version"
sidus create node --from-dir "$src"
rm -rf "$src"
A=$(sidus snapshot node -m A)
echo B >"$(sidus path node)/etc/sidus-test-version"
B=$(sidus snapshot node -m B)

step "inventory: canary1 in group canary, rest1 (fixed address) in group rest"
sidus node add canary1 --mac "$CANARY_MAC" --group canary
sidus node add rest1 --mac "${REST_MAC//:/-}" --ip "$REST_IP" --group rest
jq_fields "$(sidus nodes --json)" '.nodes | length' '.nodes[1].mac'
assert_eq "${JQ[0]}" 2
assert_eq "${JQ[1]}" "$REST_MAC" "MACs are kept canonical"

step "publish A (default and canary), then B to the canary group only"
sidus publish "node@$A" >/dev/null
sidus publish "node@$A" --group canary >/dev/null
sidus publish "node@$B" --group canary >/dev/null
assert_contains "$(cat /srv/tftp/sidus/groups/canary.ipxe)" "sidus.snapshot=$B"
assert_contains "$(cat /srv/tftp/sidus/groups/rest.ipxe)" "exit 0" "rest has no snapshot of its own: the default entry"
assert_contains "$(cat /srv/tftp/sidus/nodes/52-54-00-77-00-02.ipxe)" "chain --autofree ../groups/canary.ipxe"
assert_contains "$(cat /srv/tftp/sidus/node.ipxe)" 'chain --autofree nodes/${netX/mac:hexhyp}.ipxe'

step "DHCP and TFTP on a bridge of ${nics[*]}"
ip link add br0 type bridge
for n in "${nics[@]}"; do
    ip link set "$n" master br0
    ip link set "$n" up
done
ip addr add "$NET.1/24" dev br0
ip link set br0 up
dnsmasq --port=0 --interface=br0 --bind-interfaces --except-interface=lo \
    --dhcp-range="$NET.50,$NET.99,1h" --dhcp-host="$REST_MAC,$REST_IP" \
    --dhcp-userclass=set:ipxe,iPXE --dhcp-boot=tag:ipxe,sidus/node.ipxe --enable-tftp --tftp-root=/srv/tftp \
    --pid-file=/run/sidus-dnsmasq.pid --log-dhcp --log-facility=/tmp/dnsmasq.log
: >"$report"
(while :; do busybox nc -l -p 7777 >>"$report" || sleep 1; done) &
listener=$!
# The bridge goes too: the next netboot scenario in this VM makes its own.
trap 'kill "$(cat /run/sidus-dnsmasq.pid)" "$listener" 2>/dev/null || true; umount /mnt/v4 2>/dev/null || true; ip link del br0 2>/dev/null || true' EXIT

# wait_report MAC ID: waits for the node with MAC to report it booted node@ID.
wait_report() {
    local t0=$SECONDS line
    for _ in $(seq 1 900); do
        line=$(grep -a "mac=$1" "$report" | tail -n 1 || true)
        [[ $line == *"SIDUS-NODE-BOOTED node@$2 "* ]] && break
        sleep 1
    done
    if [[ $line != *"SIDUS-NODE-BOOTED node@$2 "* ]]; then
        tail -n 40 /tmp/dnsmasq.log || true
        cat "$report"
        fail "no report from $1 booting node@$2 after $((SECONDS - t0)) s (last: ${line:-none})"
    fi
    echo "$1 reported after $((SECONDS - t0)) s: $line"
    REPORT=$line
}

NODES=$(sidus nodes --json)
jq_fields "$NODES" '[.nodes[] | select(.state == "unknown" and .booted == null)] | length'
assert_eq "${JQ[0]}" 2 "nodes that mount nothing are unknown, not current"

step "both nodes boot (iPXE, TFTP, kernel, NFS root) and report"
echo "SIDUS-NODE-START 0"
echo "SIDUS-NODE-START 1"
t0=$SECONDS
wait_report "$CANARY_MAC" "$B"
canary=$REPORT
wait_report "$REST_MAC" "$A"
rest=$REPORT
echo "BENCH netboot: two nodes reported what they booted $((SECONDS - t0)) s after their VMs started (all under TCG)"
assert_contains "$canary" " group=canary " "the canary came through its group's entry"
assert_contains "$canary" " version=B " "the canary runs B's content"
assert_contains "$canary" " lower=$NET.1:/srv/sidus/node/$B " "the overlay's lower layer is B's export"
assert_contains "$canary" " root=overlay " "root is the tmpfs overlay"
assert_contains "$canary" " writable " "the overlay root is writable"
assert_contains "$canary" " nfs=3 " "the initramfs mounts NFSv3"
assert_contains "$canary" " uid=52-54-00-77-00-02 " "iPXE passed the MAC as nfs.nfs4_unique_id"
assert_contains "$rest" " group= " "rest has no snapshot of its own: the tree's default entry (after the group entry's exit)"
assert_contains "$rest" " version=A " "the other node runs A"
grep -q "sent /srv/tftp/sidus/node/$B/initrd.img" /tmp/dnsmasq.log ||
    fail "dnsmasq did not serve B's initrd: $(grep -i tftp /tmp/dnsmasq.log | tail -n 5)"

# node_row NAME: assigned, booted, state and protocols of one node.
node_row() {
    jq -r --arg n "$1" '.nodes[] | select(.name == $n) | "\(.assigned) \(.booted) \(.state) \([.clients[].protocol] | join(","))"' <<<"$NODES"
}
step "sidus nodes: each node's assigned and booted ID, from the NFS server (rmtab, neighbour table)"
NODES=$(sidus nodes --json)
assert_eq "$(node_row canary1)" "node@$B node@$B current nfs3" "canary1 (found by its MAC in the neighbour table)"
assert_eq "$(node_row rest1)" "node@$A node@$A current nfs3" "rest1 (found by its address)"
assert_eq "$(sidus nodes --stale)" "" "nothing is stale"
sidus nodes

step "B to all (the default entry): rest1 is stale, and A is still in use"
sidus publish "node@$B" >/dev/null
NODES=$(sidus nodes --json)
assert_eq "$(node_row rest1)" "node@$B node@$A stale nfs3"
assert_eq "$(sidus nodes --stale)" "rest1" "exactly the stale node"
expect_fail --rc 1 sidus unpublish "node@$A"
assert_contains "$EF_ERR" "NFS clients still mount it (node rest1 ($REST_IP))"

step "publish --rollback --group canary: the canary is assigned A again, and boots it"
sidus publish --rollback --group canary >/dev/null
assert_contains "$(cat /srv/tftp/sidus/groups/canary.ipxe)" "sidus.snapshot=$A"
assert_eq "$(sidus nodes --stale | paste -sd,)" "canary1,rest1" "the canary runs B, assigned A"
echo "SIDUS-NODE-STOP 0"
echo "SIDUS-NODE-START 0"
t0=$SECONDS
wait_report "$CANARY_MAC" "$A"
echo "BENCH netboot: the canary rebooted onto A in $((SECONDS - t0)) s"
assert_contains "$REPORT" " group=canary "
assert_contains "$REPORT" " version=A "
NODES=$(sidus nodes --json)
assert_eq "$(node_row canary1)" "node@$A node@$A current nfs3" "rmtab: the canary's newest mount is A"
assert_eq "$(sidus nodes --stale)" "rest1"

step "NFSv4.2: a client named by nfs.nfs4_unique_id on an old ID is seen and blocks unpublish"
echo C >"$(sidus path node)/etc/sidus-test-version"
C=$(sidus snapshot node -m C)
sidus node add probe1 --mac 52:54:00:77:00:99 --group probe
sidus publish "node@$C" --group probe >/dev/null
modprobe nfs
echo 52-54-00-77-00-99 >/sys/module/nfs/parameters/nfs4_unique_id
nfs_mount "/srv/sidus/node/$C" /mnt/v4 vers=4.2
exec 4</mnt/v4/etc/sidus-test-version
sidus publish "node@$B" --group probe >/dev/null
NODES=$(sidus nodes --json)
if [[ $(node_row probe1) != "node@$B node@$C stale nfs4" ]]; then
    for c in /proc/fs/nfsd/clients/*; do echo "== $c"; cat "$c/info" "$c/states"; done
    grep /srv/sidus /proc/self/mountinfo
    fail "probe1: expected 'node@$B node@$C stale nfs4', got '$(node_row probe1)'"
fi
jq_fields "$NODES" '.nodes[] | select(.name == "probe1") | .clients[0].owner'
assert_contains "${JQ[0]}" "52-54-00-77-00-99" "the NFSv4 client owner carries the unique id"
expect_fail --rc 1 sidus unpublish "node@$C"
assert_contains "$EF_ERR" "NFS clients still mount it (node probe1 (127.0.0.1))"
expect_fail --rc 1 sidus delete "node@$C"
assert_contains "$EF_ERR" "mounted by NFS clients node probe1 (127.0.0.1)"
exec 4<&-
umount /mnt/v4
for _ in $(seq 1 30); do
    sidus unpublish "node@$C" 2>/tmp/unpub_err && break
    grep -q "NFS clients still mount it" /tmp/unpub_err || fail "unpublish of C: $(cat /tmp/unpub_err)"
    sleep 1
done
assert_not_contains "$(exportfs -v)" "/srv/sidus/node/$C"

teardown_store

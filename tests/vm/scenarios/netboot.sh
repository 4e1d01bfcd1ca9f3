# backends: zfs
# netboot
# A second VM network-boots what sidus published, as a diskless node would:
# its iPXE firmware gets an address and the tree's iPXE script from dnsmasq
# (DHCP + TFTP) in this VM, boots the snapshot's kernel and initrd (made by
# `sidus create --debootstrap` on the host, tests/vm/node/build), the initramfs
# mounts the export over NFS with a tmpfs overlay, and the node's PID 1 says
# over TCP (and on its console) which TREE@ID it runs. tests/vm/run starts the
# node when this prints SIDUS-NODE-START, on a socket network between the two.

NET=10.77.0
report=/tmp/node-report

nodedisk=$(disk nodetree)
nic=$(ip -o link show | awk -F': ' '$2 != "lo" { print $2; exit }')
[[ -n $nic ]] || fail "no network interface (tests/vm/run gives netboot VMs one)"
setup_store
cat >>"$SIDUS_CONFIG" <<EOF

[publish]
root = "/srv/sidus"
boot_root = "/srv/tftp"
server = "$NET.1"
clients = ["$NET.0/24"]
kernel_cmdline_extra = "ip=dhcp console=ttyS0 panic=-1 init=/usr/local/sbin/sidus-node-report"
EOF

step "the node tree into the store"
src=/tmp/node-src
mkdir -p "$src"
tar -xpf "$nodedisk" --numeric-owner --xattrs -C "$src"
sidus create node --from-dir "$src"
rm -rf "$src"
A=$(sidus snapshot node -m A)
echo B >"$(sidus path node)/etc/sidus-test-version"
B=$(sidus snapshot node -m B)

step "publish A, then switch to B"
sidus publish "node@$A" >/dev/null
sidus publish node >/dev/null
assert_contains "$(cat /srv/tftp/sidus/node.ipxe)" "sidus.snapshot=$B"

step "DHCP and TFTP on $nic"
ip addr add "$NET.1/24" dev "$nic"
ip link set "$nic" up
dnsmasq --port=0 --interface="$nic" --bind-interfaces --except-interface=lo \
    --dhcp-range="$NET.50,$NET.99,1h" --dhcp-userclass=set:ipxe,iPXE \
    --dhcp-boot=tag:ipxe,sidus/node.ipxe --enable-tftp --tftp-root=/srv/tftp \
    --pid-file=/run/sidus-dnsmasq.pid --log-dhcp --log-facility=/tmp/dnsmasq.log
: >"$report"
busybox nc -l -p 7777 >"$report" &
listener=$!
trap 'kill "$(cat /run/sidus-dnsmasq.pid)" "$listener" 2>/dev/null || true' EXIT

step "the node boots (iPXE, TFTP, kernel, NFS root) and reports"
echo "SIDUS-NODE-START"
t0=$SECONDS
for _ in $(seq 1 480); do
    [[ -s $report ]] && break
    sleep 1
done
if [[ ! -s $report ]]; then
    tail -n 40 /tmp/dnsmasq.log || true
    fail "no report from the node after $((SECONDS - t0)) s (its console follows the VM's)"
fi
line=$(head -n 1 "$report")
echo "node reported after $((SECONDS - t0)) s: $line"
echo "BENCH netboot: the node reported what it booted $((SECONDS - t0)) s after its VM started (both under TCG)"
assert_contains "$line" "SIDUS-NODE-BOOTED node@$B " "the node booted the published ID"
assert_contains "$line" " root=overlay " "root is the tmpfs overlay"
assert_contains "$line" " lower=$NET.1:/srv/sidus/node/$B " "the overlay's lower layer is B's export"
assert_contains "$line" " writable " "the overlay root is writable"
assert_contains "$line" " version=B" "the content is B's"
grep -q "sent /srv/tftp/sidus/node/$B/initrd.img" /tmp/dnsmasq.log ||
    fail "dnsmasq did not serve B's initrd: $(grep -i tftp /tmp/dnsmasq.log | tail -n 5)"

step "sidus status names the node as a client of B; unpublish of B is refused while it is held"
st=$(sidus status node --json)
jq_fields "$st" ".trees[0].exported[] | select(.id == \"$B\") | .clients | join(\",\")"
assert_contains "${JQ[0]}" "$NET." "the node is listed as a client of B"
sidus publish "node@$A" >/dev/null     # B is no longer current: only the client holds it
expect_fail --rc 1 sidus unpublish "node@$B"
assert_contains "$EF_ERR" "NFS clients still mount it ($NET."

teardown_store

# backends: btrfs zfs lvm
# The `sidus run` transaction on a real backend, with a busybox tree (the
# image's busybox and its libraries): files written between pre and post
# snapshots, a daemon and a mount made inside and none left after, failure
# rolled back with the status passed through, --keep-on-failure, and a SIGKILL
# of sidus recovered by the next command on the tree.

# procs ARGV...: PIDs whose command line is exactly ARGV (joined by spaces).
procs() { pgrep -x -f "$*" || true; }

setup_store

step "a busybox tree"
src=/tmp/bbsrc
rm -rf "$src"
mkdir -p "$src"/{bin,sbin,usr/sbin,etc,root,mnt,tmp,run}
cp /bin/busybox "$src/bin/"
for lib in $(ldd /bin/busybox | grep -o '/[^ ]*'); do
    mkdir -p "$src$(dirname "$lib")"
    cp -L "$lib" "$src$lib"
done
for a in $(/bin/busybox --list); do [[ -e $src/bin/$a ]] || ln -s busybox "$src/bin/$a"; done
ln -s ../bin/busybox "$src/sbin/start-stop-daemon"
: >"$src/etc/resolv.conf"
sidus create bb --from-dir "$src"
tree=$(sidus path bb)

step "files written between pre and post snapshots"
out=$(echo hello | sidus run bb -m one -- sh -c 'cat > /root/f; /usr/sbin/policy-rc.d; echo policy=$?')
assert_eq "$out" "policy=101"
assert_eq "$(cat "$tree/root/f")" hello
snaps=$(sidus snapshots bb --json)
jq_fields "$snaps" '.[0].kind' '.[1].kind' '.[1].pre' '.[0].id' '.[1].status'
assert_eq "${JQ[0]}" pre
assert_eq "${JQ[1]}" post
assert_eq "${JQ[2]}" "${JQ[3]}"
assert_eq "${JQ[4]}" 0
[[ ! -e $tree/usr/sbin/policy-rc.d ]] || fail "policy-rc.d left in the tree"
assert_eq "$(readlink "$tree/sbin/start-stop-daemon")" ../bin/busybox

step "a daemon and a mount made inside: none left"
sidus run bb -- sh -c 'mount -t tmpfs sidusleak /mnt; (setsid sleep 31337 &); sleep 31338 & exit 0'
assert_eq "$(procs sleep 31337)$(procs sleep 31338)" "" "processes left"
assert_not_contains "$(cat /proc/self/mountinfo)" sidusleak "mount left"

step "failure rolls back and passes the status through"
expect_fail --rc 7 sidus run bb -- sh -c 'echo bad > /root/bad; exit 7'
assert_contains "$EF_ERR" "rolled back to"
[[ ! -e $tree/root/bad ]] || fail "the failed run was not rolled back"

step "--keep-on-failure keeps a failed run as post"
expect_fail --rc 3 sidus run bb --keep-on-failure -- sh -c 'echo half > /root/half; exit 3'
[[ -e $tree/root/half ]] || fail "the failed run was not kept"
assert_eq "$(sidus snapshots bb --json | jq -r '.[-1].status')" 3

step "SIGKILL of sidus mid-run, recovered by the next command"
sidus run bb -- sh -c 'touch /root/started; sleep 31339 & sleep 31339' &
pid=$!
for _ in $(seq 200); do [[ -e $tree/root/started ]] && break; sleep 0.05; done
[[ -e $tree/root/started ]] || fail "the run never started"
kill -9 "$pid"
wait "$pid" || true
for _ in $(seq 100); do [[ -z $(procs sleep 31339) ]] && break; sleep 0.05; done
assert_eq "$(procs sleep 31339)" "" "the sandbox outlived sidus"
out=$(sidus snapshot bb -m next 2>&1)
assert_contains "$out" "ended the interrupted run as failed"
[[ ! -e $tree/root/started ]] || fail "not rolled back by the recovery"
[[ ! -e $tree/usr/sbin/policy-rc.d ]] || fail "policy-rc.d left after recovery"

doctor_healthy
teardown_store

# backends: zfs
# What a `sidus run` command cannot do to the host, on a Debian kernel with
# modules and SysRq (the build host of the root tests may have neither): no
# module loading, no clock setting, /proc/sys and /proc/sysrq-trigger
# read-only, and only loopback with --network none. The sandbox does not depend
# on the backend: one is enough.

setup_store

step "a busybox tree"
src=/tmp/bbsrc
rm -rf "$src"
mkdir -p "$src"/{bin,sbin,usr/sbin,etc,root,tmp,run}
cp /bin/busybox "$src/bin/"
for lib in $(ldd /bin/busybox | grep -o '/[^ ]*'); do
    mkdir -p "$src$(dirname "$lib")"
    cp -L "$lib" "$src$lib"
done
for a in $(/bin/busybox --list); do [[ -e $src/bin/$a ]] || ln -s busybox "$src/bin/$a"; done
: >"$src/etc/resolv.conf"
sidus create bb --from-dir "$src"

step "CapBnd lacks CAP_SYS_MODULE and CAP_SYS_BOOT"
bnd=$(sidus run bb -- grep CapBnd /proc/self/status | awk '{print $2}')
(((0x$bnd >> 16) & 1)) && fail "CAP_SYS_MODULE in CapBnd $bnd"
(((0x$bnd >> 22) & 1)) && fail "CAP_SYS_BOOT in CapBnd $bnd"

step "insmod fails with EPERM; with --capability CAP_SYS_MODULE only the format is refused"
[[ -e /proc/modules ]] || fail "the VM kernel has no module support"
# A real module file (dummy if the kernel has it): refused before it is read.
mod=$(find "/lib/modules/$(uname -r)" -name 'dummy.ko*' | head -n 1)
[[ -n $mod ]] || mod=$(find "/lib/modules/$(uname -r)" -name '*.ko*' | head -n 1)
[[ -n $mod ]] || fail "no module file in /lib/modules/$(uname -r)"
cp "$mod" "$(sidus path bb)/root/"
expect_fail sidus run bb -- insmod "/root/${mod##*/}"
assert_contains "$EF_ERR" "Operation not permitted"
# Not a module: whatever the capabilities, the kernel never loads it.
ko="printf '\\177ELF' > /tmp/x.ko; insmod /tmp/x.ko"
expect_fail sidus run bb -- sh -c "$ko"
assert_contains "$EF_ERR" "can't insert '/tmp/x.ko': Operation not permitted"
expect_fail sidus run bb --capability CAP_SYS_MODULE -- sh -c "$ko"
assert_not_contains "$EF_ERR" "Operation not permitted"

step "date -s fails"
out=$(sidus run bb -- sh -c 'date -s "$(date "+%Y-%m-%d %H:%M:%S")"' 2>&1 >/dev/null)
assert_contains "$out" "can't set date: Operation not permitted"

step "sysctl -w and /proc/sysrq-trigger fail, the host's value is unchanged"
before=$(cat /proc/sys/vm/swappiness)
other=$((before == 17 ? 18 : 17))
out=$(sidus run bb -- sh -c "sysctl -w vm.swappiness=$other; echo $other > /proc/sys/vm/swappiness; echo h > /proc/sysrq-trigger; echo done" 2>&1)
assert_eq "$(cat /proc/sys/vm/swappiness)" "$before" "host vm.swappiness"
assert_contains "$out" "Read-only file system"
assert_contains "$out" "can't create /proc/sysrq-trigger: Read-only file system"

step "--network none: only lo, up"
out=$(sidus run bb --network none -- sh -c 'ls /sys/class/net; ping -c 1 -W 2 127.0.0.1 >/dev/null && echo ping=ok')
assert_eq "$out" "lo
ping=ok"

teardown_store

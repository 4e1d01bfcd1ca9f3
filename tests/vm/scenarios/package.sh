# backends: zfs
# The Debian package /init installed with dpkg -i: dpkg knows its files (the
# binary in /usr/sbin, man pages, bash/zsh/fish completions, the systemd unit,
# the example config), they are on disk, the unit is enabled, and the
# installed sidus and its bash completion work on a real store.

step "dpkg knows sidus"
[[ -f /sidus/sidus.deb ]] || fail "no /sidus/sidus.deb: tests/vm/run ships none (SIDUS_BIN=none?)"
assert_eq "$(dpkg-query -W -f '${db:Status-Status}' sidus)" installed "dpkg status of sidus"
version=$(dpkg-query -W -f '${Version}' sidus)
assert_eq "$(command -v sidus)" /usr/sbin/sidus "the sidus on PATH"
assert_eq "$(sidus --version)" "sidus $version" "sidus --version"

step "dpkg -L sidus: man pages, completions, unit"
files=$(dpkg -L sidus)
echo "$files"
for f in /usr/sbin/sidus \
    /usr/share/man/man1/sidus.1.gz \
    /usr/share/man/man1/sidus-restore.1.gz \
    /usr/share/bash-completion/completions/sidus \
    /usr/share/zsh/vendor-completions/_sidus \
    /usr/share/fish/vendor_completions.d/sidus.fish \
    /usr/lib/systemd/system/sidus-restore.service \
    /usr/share/doc/sidus/examples/sidus.toml \
    /usr/share/doc/sidus/copyright; do
    grep -qxF "$f" <<<"$files" || fail "dpkg -L sidus does not list $f"
    [[ -f $f ]] || fail "$f is listed but not on disk"
done
pages=$(grep -c '^/usr/share/man/man[0-9]/sidus.*\.gz$' <<<"$files")
(( pages >= 20 )) || fail "only $pages man pages in the package"
gzip -t /usr/share/man/man1/sidus.1.gz

step "the unit runs the packaged sidus and is enabled"
unit=/usr/lib/systemd/system/sidus-restore.service
assert_contains "$(cat "$unit")" "ExecStart=sidus restore"
if command -v deb-systemd-helper >/dev/null; then
    [[ -L /etc/systemd/system/multi-user.target.wants/sidus-restore.service ]] ||
        fail "postinst did not enable sidus-restore.service"
else
    echo "no deb-systemd-helper in the image: enabling not checked"
fi

step "the installed sidus on a real store, with its bash completion"
setup_store
sidus create lab
a=$(sidus snapshot lab -m first)
b=$(sidus snapshot lab -m second)
replies=$(bash -c '. /usr/share/bash-completion/completions/sidus
    COMP_LINE="sidus show lab@"; COMP_POINT=${#COMP_LINE}
    _sidus sidus "" @; printf "%s\n" "${COMPREPLY[@]}"')
assert_eq "$(tr '\n' ' ' <<<"$replies")" "latest $b $a " "completing lab@"
out=$(sidus --json show lab@nosuch || true)
assert_eq "$(jq -r .exit <<<"$out")" 1 "an error under --json is a document"
teardown_store

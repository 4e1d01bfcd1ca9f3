# backends: lvm
# on-demand
# Times `sidus snapshot` and `sidus clone` against the raw lvm2 commands they
# wrap, on the same tree content, and `sidus snapshots --json` against `lvs`.
# Prints a table (median of $RUNS runs, milliseconds); it measures, it does
# not judge: the VM runs under TCG, so absolute figures are slow, ratios matter.

RUNS=${BENCH_RUNS:-5}

now_ns() { date +%s%N; }
# ms CMD...: runs CMD with output discarded, prints its wall time in ms.
ms() {
    local t0; t0=$(now_ns)
    "$@" >/dev/null
    echo $((($(now_ns) - t0) / 1000000))
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
row() {  # LABEL SIDUS_TIMES RAW_TIMES
    local s r; s=$(median <<<"$2"); r=$(median <<<"$3")
    printf 'bench: %-34s sidus %6s ms   raw %6s ms   ratio %s\n' "$1" "$s" "$r" \
        "$(awk -v s="$s" -v r="$r" 'BEGIN { printf (r > 0 ? "%.2f" : "-"), s / r }')"
}

setup_store
step "content: /usr/share (a few thousand files) in a sidus tree and a raw LV"
sidus create b1 --from-dir /usr/share
lvcreate -q -y -n rawbase -V 20G -T "$VG/$THINPOOL"
mkfs.ext4 -q -E lazy_itable_init=1,lazy_journal_init=1,nodiscard "/dev/$VG/rawbase"
mkdir -p /mnt/rawbase
mount -o noinit_itable,discard "/dev/$VG/rawbase" /mnt/rawbase
cp -a /usr/share/. /mnt/rawbase/
sync
echo "bench: tree holds $(du -sh "$(sidus path b1)" | cut -f1) in $(find "$(sidus path b1)" | wc -l) entries; pool data $(lvs --noheadings -o data_percent "$VG/$THINPOOL" | tr -d ' ')%"

step "snapshot"
s_snap='' r_snap=''
for i in $(seq "$RUNS"); do
    echo "change $i" >"$(sidus path b1)/bench-file"
    s_snap+=" $(ms sidus snapshot b1 -m "bench $i")"
    echo "change $i" >/mnt/rawbase/bench-file
    r_snap+=" $(ms lvcreate -q -y -s -k y -p r -n "raw.s$i" "$VG/rawbase")"
done
row "snapshot (raw: lvcreate -s)" "$s_snap" "$r_snap"

step "clone"
s_clone='' r_clone='' r_clone_mount=''
first=$(sidus --json snapshots b1 | jq -r '.[0].id')
for i in $(seq "$RUNS"); do
    s_clone+=" $(ms sidus clone "b1@$first" "bc$i")"
    r_clone+=" $(ms lvcreate -q -y -s -k n -p rw -n "raw.c$i" "$VG/raw.s1")"
    mkdir -p "/mnt/raw.c$i"
    r_clone_mount+=" $(ms mount -o noinit_itable,discard "/dev/$VG/raw.c$i" "/mnt/raw.c$i")"
done
row "clone (raw: lvcreate -s)" "$s_clone" "$r_clone"
r_both=''
read -ra c <<<"$r_clone"; read -ra m <<<"$r_clone_mount"
for i in "${!c[@]}"; do r_both+=" $((c[i] + m[i]))"; done
row "clone (raw: lvcreate -s + mount)" "$s_clone" "$r_both"

step "listing"
s_list='' r_list=''
for i in $(seq "$RUNS"); do
    s_list+=" $(ms sidus --json snapshots b1)"
    r_list+=" $(ms lvs --reportformat json -o lv_name,lv_tags "$VG")"
done
row "snapshots --json ($RUNS snaps; raw: lvs)" "$s_list" "$r_list"

step "cleanup"
for i in $(seq "$RUNS"); do umount "/mnt/raw.c$i"; sidus destroy "bc$i"; done
umount /mnt/rawbase
sidus destroy b1
teardown_store

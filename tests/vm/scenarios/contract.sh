# backends: zfs lvm
# contract-suite
# shards: zfs=2 lvm=2
# timeout: 1800
# The contract suite (tests/contract_*.rs, the same test binaries `cargo
# nextest run` runs natively on btrfs; the crash matrix is crash.sh) on this
# backend: tests/vm/run ships them as a nextest archive with cargo-nextest in
# /sidus/contract, and run_test_archive (lib.sh) gives them a ZFS pool or a
# volume group and an ext4 for their temp dirs. Prints one SIDUS-TEST line per
# test with its time, then the skips and nextest's summary. The suite is cut
# in two shards (SIDUS_SHARD, nextest --partition) that can run on two VMs:
# smaller pieces let tests/vm/run deal the VMs even shares.

run_test_archive "($SIDUS_VM_CONTRACT_FILTER) & not binary(contract_crash)"

# backends: zfs lvm
# contract-suite
# shards: zfs=2 lvm=2
# timeout: 2400
# The crash matrix (tests/contract_crash.rs) on this backend, with the real
# nfsd: sidus is killed at every failpoint of each change (create, snapshot,
# clone, delete, prune, destroy, rollback, also of a published tree, publish,
# unpublish, restore, run) and of this backend's own steps; the next command and
# `sidus doctor` must leave the store as before or as after, its exports in
# the kernel's table included (SIDUS_TEST_NFSD=1). Prints "AREA: N failpoints
# x 1 backend (...), M crash runs: all recovered" per area.
#
# By default every area but the fleet's (node inventory and group entries:
# sidus's state and boot files only, the same code on every backend), which
# runs natively; under TCG it would cost about 6 more minutes per backend. A
# filter runs it here too:
# SIDUS_VM_CONTRACT_FILTER='test(/fleet/)' tests/vm/run crash
#
# In two shards that can run on two VMs, split by area, not by nextest's
# round-robin (which put publish and storage, most of the crash runs, in one):
# 1/2 the storage changes (about 30 stores), 2/2 publish and run (about 27).
filter=$SIDUS_VM_CONTRACT_FILTER
if [[ $filter == "all()" ]]; then
    case ${SIDUS_SHARD:-} in
    1/2) filter='test(/every_failpoint|kill_in_storage_/)' ;;
    2/2) filter='test(/kill_in_(publish|run)_/)' ;;
    *) filter='test(/every_failpoint|kill_in_(storage|publish|run)_/)' ;;
    esac
    SIDUS_SHARD=
fi
nfsd_up
SIDUS_TEST_NFSD=1 run_test_archive "($filter) & binary(contract_crash)" --success-output final

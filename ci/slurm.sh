#!/usr/bin/env bash
# Make Slurm grading possible on this machine: a single-node cluster of this host.
# As root it installs Debian's slurm-wlm and munge when missing (from the apt
# sources the machine already has), writes a minimal slurm.conf for this host
# (its CPUs and memory, one partition), starts munged, slurmctld and slurmd, and
# waits until the node is idle. Running it again changes nothing that works.
#
#   ci/slurm.sh        exit 0 when `sbatch` can run jobs on this host
#
# The Slurm tests (tests/test_slurm.py) use the cluster it leaves; a real cluster
# needs none of this (see README.md, "Grading on a Slurm cluster").
set -euo pipefail
cd "$(dirname "$0")/.."

CONF=/etc/slurm/slurm.conf
STATE=/var/lib/slurm
LOGS=/var/log/slurm
PARTITION=grading

log() { echo "[slurm] $*" >&2; }
fail() {
    log "error: $*"
    exit 1
}

node_idle() {
    local state
    state="$(sinfo -h -N -n "$(hostname -s)" -o %T 2>/dev/null | head -1)"
    [[ "$state" == idle || "$state" == mixed || "$state" == allocated ]]
}

# Already usable (a cluster this script or someone else set up): nothing to do.
if command -v sinfo >/dev/null 2>&1 && node_idle; then
    log "the cluster is up; node $(hostname -s) is $(sinfo -h -N -n "$(hostname -s)" -o %T)"
    exit 0
fi
[[ $EUID -eq 0 ]] || fail "no usable Slurm cluster here, and only root may set one up (tip: run ci/slurm.sh as root, or point sbatch at a cluster)"

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    log "installing slurm-wlm and munge (Debian packages) ..."
    apt-get update -qq >/dev/null || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null 2>&1 ||
        fail "apt-get could not install slurm-wlm and munge"
fi

# -- munge: the credentials slurmctld and slurmd check ------------------------------------
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    [[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged || fail "munged did not start (see /var/log/munge/munged.log)"
    for _ in $(seq 20); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.5
    done
    munge -n | unmunge >/dev/null 2>&1 || fail "munge does not answer (see /var/log/munge/munged.log)"
fi

# -- slurm.conf for this host ----------------------------------------------------------------
host="$(hostname -s)"
cpus="$(nproc)"
# What slurmd reports, less a little for the daemons (a node configured with more
# memory than it has would be drained).
memory="$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
gres=""
gpus="$(compgen -G '/dev/nvidia[0-9]*' | wc -l || true)"
if [[ "$gpus" -gt 0 ]]; then
    gres=" Gres=gpu:$gpus"
    printf 'AutoDetect=off\nNodeName=%s Name=gpu File=/dev/nvidia[0-%d]\n' "$host" "$((gpus - 1))" \
        >/etc/slurm/gres.conf
fi
install -d -m 0755 /etc/slurm "$STATE/slurmctld" "$STATE/slurmd" "$LOGS"
wanted="$(
    cat <<EOF
# Written by ci/slurm.sh: a single-node cluster of this host, for grading tests.
ClusterName=llmsys
SlurmctldHost=$host
AuthType=auth/munge
SlurmUser=root
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# No cgroup plugins: the grader's local sandbox manages its own control groups.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
# Finished jobs stay visible (state, exit code) for 5 minutes without accounting.
MinJobAge=300
KillWait=5
GresTypes=gpu
NodeName=$host CPUs=$cpus RealMemory=$memory$gres State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
)"
changed=0
if [[ ! -f "$CONF" ]] || [[ "$(cat "$CONF")" != "$wanted" ]]; then
    printf '%s\n' "$wanted" >"$CONF"
    changed=1
fi

# -- daemons ------------------------------------------------------------------------------
running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
if [[ $changed -eq 1 ]]; then
    # A new configuration: restart what runs with the old one.
    for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
        if running "$pidfile"; then
            kill "$(cat "$pidfile")" || true
            sleep 1
        fi
    done
fi
if ! running /run/slurmctld.pid; then
    log "starting slurmctld (log: $LOGS/slurmctld.log) ..."
    slurmctld || fail "slurmctld did not start (see $LOGS/slurmctld.log)"
fi
if ! running /run/slurmd.pid; then
    log "starting slurmd (log: $LOGS/slurmd.log) ..."
    slurmd || fail "slurmd did not start (see $LOGS/slurmd.log)"
fi
for _ in $(seq 60); do
    if node_idle; then
        log "the cluster is up; node $host ($cpus CPUs, $memory MiB) is $(sinfo -h -N -n "$host" -o %T)"
        exit 0
    fi
    # A node left down or drained by an earlier run comes back once the daemons run.
    scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
    sleep 1
done
fail "node $host did not become idle in 60 s ($(sinfo -h -N -n "$host" -o '%T %E' 2>&1 | head -1)); see $LOGS/"

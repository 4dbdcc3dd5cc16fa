#!/usr/bin/env bash
# Start a private single-node SLURM cluster on this machine, for trying profiles/slurm and for
# tests/test_cluster_slurm.py. Needs root and Debian/Ubuntu apt (installs slurmctld, slurmd,
# slurm-client and munge when missing). No systemd: munged, slurmctld and slurmd are started
# directly, with their config, key, sockets, state and logs in one private directory.
#
#   cluster/start-local-slurm.sh [STATE_DIR]     # default: /tmp/ablation-slurm
#   source STATE_DIR/env.sh                      # exports SLURM_CONF for sinfo/sbatch/snakemake
#   cluster/stop-local-slurm.sh [STATE_DIR]      # stops the daemons by PID, removes STATE_DIR
#
# The node is this host (NodeName = `hostname -s`, address 127.0.0.1, daemons bound to
# 127.0.0.1 only). It advertises the machine's CPU count, NODE_MEMORY_MB of memory and
# FAKE_GPUS fake GPUs (gres gpu:fake:N backed by /dev/null, /dev/zero, ...): jobs can ask for
# --gpus and each gets its own CUDA_VISIBLE_DEVICES, but there is no GPU behind it.
# No accounting database: use `squeue` for job status (MinJobAge keeps finished jobs there).
#
# Settings (environment):
#   SLURMCTLD_PORT (16817)  SLURMD_PORT (16818)  FAKE_GPUS (2)  NODE_MEMORY_MB (16000)
#   MIN_JOB_AGE (600 s)     START_TIMEOUT (90 s)
#
# Exit status: 0 when the node is idle, 77 when the cluster cannot exist here (not root, or SLURM
# missing and no apt-get), 1 on any other failure (with the daemons' last log lines).
set -euo pipefail

STATE_DIR=$(realpath -m "${1:-${ABLATION_SLURM_DIR:-/tmp/ablation-slurm}}")
SLURMCTLD_PORT=${SLURMCTLD_PORT:-16817}
SLURMD_PORT=${SLURMD_PORT:-16818}
FAKE_GPUS=${FAKE_GPUS:-2}
NODE_MEMORY_MB=${NODE_MEMORY_MB:-16000}
MIN_JOB_AGE=${MIN_JOB_AGE:-600}
START_TIMEOUT=${START_TIMEOUT:-90}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { echo "[local-slurm] $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || { say "SKIP: needs root (slurmd launches jobs as their user); running as $(id -un)"; exit 77; }

# --- packages -----------------------------------------------------------------------------
need_install=0
for binary in slurmctld slurmd sbatch squeue sinfo munged; do
    command -v "$binary" >/dev/null 2>&1 || [ -x "/usr/sbin/$binary" ] || need_install=1
done
if [ "$need_install" = 1 ]; then
    command -v apt-get >/dev/null 2>&1 || { say "SKIP: SLURM is not installed and apt-get is unavailable"; exit 77; }
    say "installing slurmctld slurmd slurm-client munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    packages=(slurmctld slurmd slurm-client munge)
    if ! apt-get install -y -q "${packages[@]}" >"${TMPDIR:-/tmp}/local-slurm-apt.log" 2>&1; then
        apt-get update -q >>"${TMPDIR:-/tmp}/local-slurm-apt.log" 2>&1 || true
        apt-get install -y -q "${packages[@]}" >>"${TMPDIR:-/tmp}/local-slurm-apt.log" 2>&1 \
            || { tail -20 "${TMPDIR:-/tmp}/local-slurm-apt.log" >&2; die "apt-get install ${packages[*]} failed"; }
    fi
fi
export PATH="$PATH:/usr/sbin:/sbin"

# --- private directory and configuration ----------------------------------------------------
if [ -s "$STATE_DIR/run/slurmctld.pid" ] \
    && [ "$(cat "/proc/$(tr -dc 0-9 <"$STATE_DIR/run/slurmctld.pid")/comm" 2>/dev/null)" = slurmctld ]; then
    die "a local cluster already runs from $STATE_DIR (stop it with cluster/stop-local-slurm.sh $STATE_DIR)"
fi
if [ -n "$(ls -A "$STATE_DIR" 2>/dev/null)" ] && [ ! -f "$STATE_DIR/etc/slurm.conf" ]; then
    die "$STATE_DIR is not empty and not a local cluster directory; choose another one"
fi
rm -rf "$STATE_DIR"
mkdir -p "$STATE_DIR"/{etc,munge,state,spool,run,log}
# munged wants its socket directory searchable by all; the key itself is root-only (0400).
chmod 755 "$STATE_DIR" "$STATE_DIR/munge"
# If anything below fails, show the logs and stop what was started (state kept for a look).
started=0
on_exit() {
    [ "$started" = 1 ] && return
    say "start failed; last log lines:"
    tail -n 20 "$STATE_DIR"/log/*.log "$STATE_DIR"/munge/munged.log >&2 2>/dev/null || true
    "$HERE/stop-local-slurm.sh" --keep "$STATE_DIR" >&2 || true
}
trap on_exit EXIT

NODE=$(hostname -s)
CPUS=$(nproc --all)
CONF="$STATE_DIR/etc/slurm.conf"
# The daemons bind to the address their host name resolves to when asked (NoCtldInAddrAny for
# slurmctld, NoInAddrAny for slurmd and the rest): on a host whose name is 127.0.0.1 (as in
# /etc/hosts of most containers) nothing listens beyond loopback. Otherwise they would have to
# bind to every interface (their traffic still goes to 127.0.0.1 only).
host_address=$(getent ahostsv4 "$(hostname)" 2>/dev/null | awk 'NR == 1 {print $1}')
case "$host_address" in
    127.*) comm_params="# Bind the daemons to $host_address (what $(hostname) resolves to), not to every interface.
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny" ;;
    *) comm_params="# $(hostname) resolves to '${host_address:-nothing}', not loopback: daemons bind to all interfaces.
# (CommunicationParameters left at its default)"
       say "WARNING: $(hostname) does not resolve to 127.0.0.1; slurmctld/slurmd listen on all interfaces (ports $SLURMCTLD_PORT/$SLURMD_PORT)" ;;
esac

gpu_devices=(/dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty)
[ "$FAKE_GPUS" -le "${#gpu_devices[@]}" ] || die "FAKE_GPUS must be at most ${#gpu_devices[@]}"
{
    echo "# Fake GPUs: schedulable gres backed by harmless character devices."
    echo "AutoDetect=off"
    for ((i = 0; i < FAKE_GPUS; i++)); do
        echo "NodeName=$NODE Name=gpu Type=fake File=${gpu_devices[$i]}"
    done
} >"$STATE_DIR/etc/gres.conf"
node_gres=""
[ "$FAKE_GPUS" -gt 0 ] && node_gres="Gres=gpu:fake:$FAKE_GPUS"

# TaskProlog: records each task's GPU binding (read by tests/test_cluster_slurm.py).
cat >"$STATE_DIR/etc/task-prolog.sh" <<EOF
#!/bin/sh
echo "job=\${SLURM_JOB_ID} step=\${SLURM_STEP_ID:-batch} cuda_visible_devices=\${CUDA_VISIBLE_DEVICES:-unset} job_gpus=\${SLURM_JOB_GPUS:-none}" >> "$STATE_DIR/log/task-gpus.log"
EOF
chmod 755 "$STATE_DIR/etc/task-prolog.sh"
: >"$STATE_DIR/etc/plugstack.conf"

cat >"$CONF" <<EOF
# Written by cluster/start-local-slurm.sh: a private one-node cluster on this host.
ClusterName=ablationlocal
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$SLURMCTLD_PORT
SlurmdPort=$SLURMD_PORT
$comm_params
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE_DIR/munge/munge.socket
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/run/slurmctld.pid
SlurmdPidFile=$STATE_DIR/run/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$STATE_DIR/etc/plugstack.conf
TaskProlog=$STATE_DIR/etc/task-prolog.sh
# No cgroups in containers: plain /proc process tracking, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
# Finished jobs stay visible to squeue this long (the status check of profiles/slurm).
MinJobAge=$MIN_JOB_AGE
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerParameters=batch_sched_delay=0
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$CPUS RealMemory=$NODE_MEMORY_MB $node_gres State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

# Inside a job, snakemake's slurm-jobstep executor starts the rule with `srun` after removing
# every SLURM_* variable but a few, SLURM_CONF included: srun would then look for
# /etc/slurm/slurm.conf and fail ("fetch_config: DNS SRV lookup failed"). This srun on PATH
# restores the private config for it.
mkdir -p "$STATE_DIR/bin"
cat >"$STATE_DIR/bin/srun" <<EOF
#!/bin/sh
SLURM_CONF='$CONF' exec '$(command -v srun)' "\$@"
EOF
chmod 755 "$STATE_DIR/bin/srun"

cat >"$STATE_DIR/env.sh" <<EOF
# source this file to talk to the local cluster in $STATE_DIR
export SLURM_CONF='$CONF'
export PATH="$STATE_DIR/bin:\$PATH:/usr/sbin:/sbin"
EOF
export SLURM_CONF="$CONF"

# --- munge ----------------------------------------------------------------------------------
dd if=/dev/urandom of="$STATE_DIR/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$STATE_DIR/munge/munge.key"
# --force: munged otherwise refuses a socket below a directory others cannot enter (such as
# pytest's 0700 temporary directories); here only root talks to it.
munged --force --socket="$STATE_DIR/munge/munge.socket" --key-file="$STATE_DIR/munge/munge.key" \
    --pid-file="$STATE_DIR/munge/munged.pid" --log-file="$STATE_DIR/munge/munged.log" \
    --seed-file="$STATE_DIR/munge/munged.seed"
for _ in $(seq 50); do
    munge --socket="$STATE_DIR/munge/munge.socket" -n </dev/null >/dev/null 2>&1 && break
    sleep 0.1
done
munge --socket="$STATE_DIR/munge/munge.socket" -n </dev/null | unmunge --socket="$STATE_DIR/munge/munge.socket" >/dev/null
say "munged running (pid $(cat "$STATE_DIR/munge/munged.pid"))"

# --- slurmctld and slurmd (both daemonize and write their pid files) --------------------------
slurmctld -c -f "$CONF"
slurmd -c -f "$CONF" -N "$NODE"

deadline=$((SECONDS + START_TIMEOUT))
until [ -s "$STATE_DIR/run/slurmctld.pid" ] && [ -s "$STATE_DIR/run/slurmd.pid" ] \
    && [ "$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null)" = idle ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        sinfo -N -l >&2 || true
        die "node $NODE not idle after ${START_TIMEOUT}s"
    fi
    sleep 0.5
done
started=1
say "node $NODE idle: $CPUS CPUs, ${NODE_MEMORY_MB} MB, gpu:fake:$FAKE_GPUS; slurmctld pid $(cat "$STATE_DIR/run/slurmctld.pid"), slurmd pid $(cat "$STATE_DIR/run/slurmd.pid")"
say "use it with: source $STATE_DIR/env.sh"
echo "$STATE_DIR/env.sh"

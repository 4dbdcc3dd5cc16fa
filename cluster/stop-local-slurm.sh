#!/usr/bin/env bash
# Stop the private cluster started by cluster/start-local-slurm.sh: cancel its jobs, stop
# slurmd, slurmctld and munged by the PIDs they recorded in STATE_DIR (plus any slurmstepd
# still serving one of its jobs), then remove STATE_DIR.
#
#   cluster/stop-local-slurm.sh [--keep] [STATE_DIR]    # default: /tmp/ablation-slurm
#
# --keep leaves STATE_DIR (config, logs, state) in place. Safe to run twice or after a failed start.
set -uo pipefail

keep=0
if [ "${1:-}" = --keep ]; then keep=1; shift; fi
STATE_DIR=$(realpath -m "${1:-${ABLATION_SLURM_DIR:-/tmp/ablation-slurm}}")
CONF="$STATE_DIR/etc/slurm.conf"
export PATH="$PATH:/usr/sbin:/sbin"

say() { echo "[local-slurm] $*" >&2; }

[ -d "$STATE_DIR" ] || { say "nothing to stop: $STATE_DIR does not exist"; exit 0; }

# pid_of FILE NAME: the PID in FILE if that process is still alive and is NAME.
pid_of() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(tr -dc 0-9 <"$1")
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    [ "$(cat "/proc/$pid/comm")" = "$2" ] || return 1
    echo "$pid"
}

# gone PID: the process has exited (a zombie waiting for its parent counts as exited).
gone() {
    [ -r "/proc/$1/stat" ] || return 0
    [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" = Z ]
}

# descendants PID: the PIDs of all processes below PID.
descendants() {
    local stat child
    for stat in /proc/[0-9]*/stat; do
        [ "$({ sed 's/.*) //' "$stat" | cut -d' ' -f2; } 2>/dev/null)" = "$1" ] || continue
        child=${stat#/proc/}; child=${child%/stat}
        echo "$child"
        descendants "$child"
    done
}

# stop_pid PID NAME: SIGTERM, up to 10 s grace, then SIGKILL.
stop_pid() {
    local pid=$1 name=$2
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        gone "$pid" && { say "stopped $name (pid $pid)"; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    say "killed $name (pid $pid)"
}

# 1. Cancel the cluster's jobs while slurmctld still answers.
if [ -f "$CONF" ] && pid_of "$STATE_DIR/run/slurmctld.pid" slurmctld >/dev/null; then
    jobs=$(SLURM_CONF="$CONF" timeout 10 squeue -h -o %i 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        say "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        SLURM_CONF="$CONF" timeout 10 scancel $jobs 2>/dev/null || true
        for _ in $(seq 50); do
            [ -z "$(SLURM_CONF="$CONF" timeout 10 squeue -h -t PD,R,CG,S -o %i 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
fi

# 2. Daemons, compute side first.
pid=$(pid_of "$STATE_DIR/run/slurmd.pid" slurmd) && stop_pid "$pid" slurmd
# slurmstepd processes of this cluster (they carry its SLURM_CONF in their environment) that
# outlived the cancel, e.g. because slurmctld was already gone: their job's processes first.
for environ in /proc/[0-9]*/environ; do
    pid=${environ#/proc/}; pid=${pid%/environ}
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = slurmstepd ] || continue
    { tr '\0' '\n' <"$environ"; } 2>/dev/null | grep -qx "SLURM_CONF=$CONF" || continue
    tasks=$(descendants "$pid")
    for task in $tasks; do kill -TERM "$task" 2>/dev/null; done
    stop_pid "$pid" slurmstepd
    for task in $tasks; do gone "$task" || kill -KILL "$task" 2>/dev/null; done
done
pid=$(pid_of "$STATE_DIR/run/slurmctld.pid" slurmctld) && stop_pid "$pid" slurmctld
pid=$(pid_of "$STATE_DIR/munge/munged.pid" munged) && stop_pid "$pid" munged

# 3. State.
if [ "$keep" = 1 ]; then
    say "kept $STATE_DIR"
elif [ ! -f "$CONF" ]; then
    say "left $STATE_DIR in place: not a local cluster directory (no etc/slurm.conf)"
else
    rm -rf "$STATE_DIR"
    say "removed $STATE_DIR"
fi
exit 0

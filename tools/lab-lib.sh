# shellcheck shell=bash
# lab-lib.sh - node power and process helpers of the tandem lab.
#
# Sourced by tools/tandem-lab, and (from the copy that `tandem-lab up` puts at
# $LAB/lib.sh) by fence_tandemlab and the per-node boot scripts, which may run
# inside another node's namespaces: nothing here may depend on the caller's
# mount namespace beyond the lab dir, /proc and the binaries in /usr.
#
# A node is a long-lived "holder" process (sleep) with its own network, mount
# and UTS namespaces. The node's processes are exactly the processes whose
# mount namespace is the holder's, minus the holder itself. No pid namespace: /proc is shared with the host.
#
# Callers set LAB_DIR and source "$LAB_DIR/lab.env" (lab_load does both).
# Functions return 0 on success and non-zero with a one-line message on
# stderr otherwise; they never exit.

# lab_load DIR - load the lab description written by `tandem-lab up`.
lab_load()
{
	LAB_DIR=$1
	if [[ ! -f $LAB_DIR/lab.env ]]; then
		echo "no tandem lab in $LAB_DIR" >&2
		return 1
	fi
	# shellcheck source=/dev/null
	. "$LAB_DIR/lab.env"
	case :${PATH:-}: in
	*:"$LAB_BUILD/tools:$LAB_BUILD/agent":*) ;;
	*) PATH=$LAB_BUILD/tools:$LAB_BUILD/agent:${PATH:-/usr/sbin:/usr/bin:/sbin:/bin} ;;
	esac
	export PATH
}

# lab_is_node NAME - NAME is one of the lab's nodes.
lab_is_node()
{
	[[ " $LAB_NODES " == *" $1 "* ]]
}

# lab_holder NODE - set LAB_HOLDER to the node's live holder pid, else fail.
lab_holder()
{
	local pid='' comm=''
	LAB_HOLDER=
	[[ -r $LAB_DIR/$1/holder.pid ]] || return 1
	read -r pid <"$LAB_DIR/$1/holder.pid" || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	{ read -r comm <"/proc/$pid/comm"; } 2>/dev/null || return 1
	[[ $comm == sleep ]] && lab_alive "$pid" || return 1
	LAB_HOLDER=$pid
}

# lab_node_pids NODE - set LAB_PIDS to the pids of the node's processes
# (not the holder, not the caller, not zombies). No fork: `-ef` compares
# the namespace inodes behind /proc/PID/ns/mnt.
lab_node_pids()
{
	local ref p pid
	LAB_PIDS=()
	lab_holder "$1" || return 0
	ref=/proc/$LAB_HOLDER/ns/mnt
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		[[ $pid == "$LAB_HOLDER" || $pid == "$$" || $pid == "$BASHPID" ]] &&
			continue
		[[ $p/ns/mnt -ef $ref ]] && LAB_PIDS+=("$pid")
	done
	return 0
}

# lab_pids_named NODE NAME - set LAB_PIDS to the node's processes whose
# comm is NAME (compared on the kernel's 15 characters).
lab_pids_named()
{
	local pid comm='' want=${2:0:15}
	local -a all
	lab_node_pids "$1"
	all=("${LAB_PIDS[@]}")
	LAB_PIDS=()
	for pid in "${all[@]}"; do
		{ read -r comm <"/proc/$pid/comm"; } 2>/dev/null || continue
		[[ $comm == "$want" ]] && LAB_PIDS+=("$pid")
	done
	return 0
}

# lab_alive PID - PID exists and is not a zombie.
lab_alive()
{
	local stat=
	{ read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

# lab_wait_gone PID... - wait (about 2 s at most) until every PID is dead.
# A killed corosync takes a few milliseconds to go: spin on /proc first
# (builtins only: each fork costs milliseconds here), then poll with sleep.
lab_wait_gone()
{
	local pid i
	for ((i = 0; i < 600; i++)); do
		for pid in "$@"; do
			lab_alive "$pid" && break
			shift
		done
		(($# == 0)) && return 0
		((i < 200)) || sleep 0.01
	done
	echo "processes still alive after SIGKILL: $*" >&2
	return 1
}

# lab_net NODE CMD... - run `ip CMD...` in the node's network namespace.
# One exec where it can: `ip -n NAME` opens /var/run/netns/NAME, so a name
# climbing out to /proc/HOLDER/ns/net works wherever /run/netns exists (on
# the host once the lab is up, and in every node, whose holder makes it).
# Each exec costs milliseconds here and the failover bench times `off`.
lab_net()
{
	local node=$1
	shift
	lab_holder "$node" || {
		echo "node $node has no holder (lab down?)" >&2
		return 1
	}
	if [[ -d /run/netns ]]; then
		ip -n "../../proc/$LAB_HOLDER/ns/net" "$@"
	else
		nsenter -t "$LAB_HOLDER" -n -- ip "$@"
	fi
}

# lab_link_down NODE - set the node's eth0 administratively down through its
# own sysfs (/proc/HOLDER/root/sys): a builtin write, no exec.
lab_link_down()
{
	local f=/proc/$LAB_HOLDER/root/sys/class/net/eth0/flags flags=''
	{ read -r flags <"$f"; } 2>/dev/null || return 1
	{ echo "$((flags & ~1))" >"$f"; } 2>/dev/null
}

# lab_settle NODE - wait (2 s at most) for a pending background address
# flush of NODE (left by `lab_off NODE async`) to finish.
lab_settle()
{
	local pid='' i
	[[ -r $LAB_DIR/$1/flush.pid ]] || return 0
	read -r pid <"$LAB_DIR/$1/flush.pid" || return 0
	for ((i = 0; i < 200; i++)); do
		lab_alive "$pid" || return 0
		sleep 0.01
	done
}

# lab_off NODE [async] - power loss: SIGKILL every process of the node, set
# eth0 down, drop its addresses, and return once the processes are gone.
# Idempotent. With async (the fence agent: each exec costs ~10 ms here and
# the failover bench times `off`) the link goes down at once through sysfs
# and the address flush runs in the background; lab_boot and the lab's
# queries wait for it (lab_settle).
lab_off()
{
	local node=$1 mode=${2:-sync} flush
	local -a pids
	lab_holder "$node" || {
		echo "node $node has no holder (lab down?)" >&2
		return 1
	}
	lab_node_pids "$node"
	pids=("${LAB_PIDS[@]}")
	lab_settle "$node"
	if [[ $mode == async ]] && lab_link_down "$node"; then
		((${#pids[@]} == 0)) || kill -KILL "${pids[@]}" 2>/dev/null || true
		(
			lab_close_fds
			exec ip -n "../../proc/$LAB_HOLDER/ns/net" addr flush dev eth0
		) </dev/null >/dev/null 2>&1 &
		flush=$!
		echo "$flush" >"$LAB_DIR/$node/flush.pid"
	else
		((${#pids[@]} == 0)) || kill -KILL "${pids[@]}" 2>/dev/null || true
		lab_net "$node" -force -batch - <<-EOF || return 1
			addr flush dev eth0
			link set eth0 down
		EOF
	fi
	((${#pids[@]} == 0)) || lab_wait_gone "${pids[@]}"
}

# lab_close_fds - close inherited descriptors above 2 (not bash's own 255)
# so that detached node processes never hold a caller's pipe open.
lab_close_fds()
{
	local fd
	for fd in /proc/"$BASHPID"/fd/*; do
		fd=${fd##*/}
		((fd > 2 && fd != 255)) || continue
		eval "exec $fd>&-" 2>/dev/null || true
	done
}

# lab_node_exec NODE CMD... - run CMD inside the node (exec, no return).
lab_node_exec()
{
	lab_holder "$1" || {
		echo "node $1 is not running (no holder)" >&2
		return 1
	}
	shift
	exec nsenter -t "$LAB_HOLDER" -n -m -u -- "$@"
}

# lab_spawn NODE LOG CMD... - start CMD detached inside the node (own
# session, stdin /dev/null, stdout and stderr appended to LOG, cwd /).
lab_spawn()
{
	local node=$1 log=$2
	shift 2
	lab_holder "$node" || {
		echo "node $node is not running (no holder)" >&2
		return 1
	}
	(
		lab_close_fds
		cd / || exit 1
		exec nsenter -t "$LAB_HOLDER" -n -m -u -- setsid -f "$@" \
			</dev/null >>"$log" 2>&1
	)
}

# lab_corosync_ready NODE - corosync answers on its IPC inside NODE.
lab_corosync_ready()
{
	lab_holder "$1" || return 1
	nsenter -t "$LAB_HOLDER" -n -m -u -- \
		corosync-cmapctl -g totem.cluster_name >/dev/null 2>&1
}

# lab_start_daemon NODE - start tandemd inside NODE.
lab_start_daemon()
{
	lab_spawn "$1" "$LAB_DIR/$1/tandemd.log" \
		"$LAB_BUILD/agent/tandemd" -f -c /etc/tandem/tandem.conf
}

# lab_fresh NODE - give a powered-off node empty /run and /dev/shm, as a
# reboot would (stale libqb files, pid files). Mounts happen inside the
# node's private mount namespace; the hostname guard makes sure of it.
lab_fresh()
{
	lab_holder "$1" || return 1
	# shellcheck disable=SC2016 # expanded by the inner shell
	nsenter -t "$LAB_HOLDER" -m -u -- /bin/sh -c '
		[ "$(hostname)" = "$1" ] || exit 1
		umount -l /run /dev/shm 2>/dev/null
		mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run &&
		mkdir -m 1777 /run/lock && mkdir /run/netns &&
		mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
	' lab-fresh "$1"
}

# lab_boot NODE [DAEMON] - power on: eth0 up with the node's address, start
# corosync, then (DAEMON yes, default from the lab) a detached init inside
# the node waits for corosync's IPC and becomes tandemd. Returns once
# corosync is started.
lab_boot()
{
	local node=$1 daemon=${2:-$LAB_DAEMON} addr var
	var=LAB_ADDR_$node
	addr=${!var}
	lab_holder "$node" || {
		echo "node $node has no holder (lab down?)" >&2
		return 1
	}
	lab_node_pids "$node"
	if ((${#LAB_PIDS[@]})); then
		echo "node $node is already on (pids ${LAB_PIDS[*]})" >&2
		return 1
	fi
	lab_settle "$node"
	rm -f "$LAB_DIR/$node/flush.pid"
	lab_fresh "$node" || {
		echo "cannot refresh /run and /dev/shm of $node" >&2
		return 1
	}
	lab_net "$node" -batch - <<-EOF || return 1
		addr flush dev eth0
		link set lo up
		link set eth0 up
		addr replace $addr/24 dev eth0
	EOF
	lab_spawn "$node" "$LAB_DIR/$node/log/corosync.out" corosync -f ||
		return 1
	if [[ $daemon == yes ]]; then
		# shellcheck disable=SC2016 # expanded by the inner shell
		lab_spawn "$node" "$LAB_DIR/$node/tandemd.log" \
			bash -c '. "$1/lib.sh" && lab_load "$1" && lab_node_init "$2"' \
			lab-init "$LAB_DIR" "$node"
	fi
}

# lab_node_init NODE - runs inside NODE: wait (20 s at most) for corosync's
# IPC, then exec tandemd in place of this shell.
lab_node_init()
{
	local i
	for ((i = 0; i < 400; i++)); do
		if corosync-cmapctl -g totem.cluster_name >/dev/null 2>&1; then
			exec "$LAB_BUILD/agent/tandemd" -f -c /etc/tandem/tandem.conf
		fi
		sleep 0.05
	done
	echo "lab-init: corosync of $1 did not answer in 20 s" >&2
	return 1
}

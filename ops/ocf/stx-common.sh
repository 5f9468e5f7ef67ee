# stx-common.sh: the shell both OCF agents share, stx-registry and
# stx-token-server. It is not an agent: each agent sources it and then calls
# stx_run with the name of the daemon it runs. Install it next to the
# agents, mode 0644 (not executable, so that a cluster manager listing the
# provider's agents does not take it for one):
#
#	/usr/lib/ocf/resource.d/stx/stx-common.sh
#
# The agents find it in their own directory (dirname of $0), so the
# installed agents and the ones in the source tree each use the copy that
# came with them. See stx-registry-ocf(7).
#
# Actions: start stop monitor status validate-all meta-data reload usage.
# Parameters (OCF_RESKEY_*): binary config pidfile logfile k8s_marker
# stop_timeout probe_timeout.
#
# monitor: no PID file or no such process of the binary -> OCF_NOT_RUNNING (a
# standby controller never runs one); else "DAEMON probe" (HTTPS GET
# /healthz pinned to tls_certificate): 0 -> OCF_SUCCESS, 7 (nothing listens)
# -> OCF_NOT_RUNNING, else OCF_ERR_GENERIC.
#
# The agent defines stx_description, which prints the <longdesc> and
# <shortdesc> elements of its meta-data.

# Sourced here, at the top level, so that ocf-shellfuncs sees the agent's
# arguments and sets __OCF_ACTION from them.
: "${OCF_FUNCTIONS_DIR:=${OCF_ROOT:-/usr/lib/ocf}/lib/heartbeat}"
# shellcheck source=/dev/null
. "${OCF_FUNCTIONS_DIR}/ocf-shellfuncs"

# start_timeout_default is SM's start timeout, used when the cluster manager
# does not pass OCF_RESKEY_CRM_meta_timeout (milliseconds).
start_timeout_default=15
# poll is the pause between checks while starting and stopping.
poll=0.2
# kill_wait is how long stop waits for the process to vanish after SIGKILL.
kill_wait=5

# stx_defaults sets the parameters' defaults for daemon $name.
stx_defaults() {
	OCF_RESKEY_binary_default=/usr/bin/$name
	OCF_RESKEY_config_default=/etc/$name/$name.conf
	OCF_RESKEY_pidfile_default=/var/run/$name.pid
	OCF_RESKEY_logfile_default=/var/log/$name.log
	OCF_RESKEY_k8s_marker_default=/etc/kubernetes/admin.conf
	OCF_RESKEY_stop_timeout_default=10
	OCF_RESKEY_probe_timeout_default=5

	: "${OCF_RESKEY_binary=${OCF_RESKEY_binary_default}}"
	: "${OCF_RESKEY_config=${OCF_RESKEY_config_default}}"
	: "${OCF_RESKEY_pidfile=${OCF_RESKEY_pidfile_default}}"
	: "${OCF_RESKEY_logfile=${OCF_RESKEY_logfile_default}}"
	: "${OCF_RESKEY_k8s_marker=${OCF_RESKEY_k8s_marker_default}}"
	: "${OCF_RESKEY_stop_timeout=${OCF_RESKEY_stop_timeout_default}}"
	: "${OCF_RESKEY_probe_timeout=${OCF_RESKEY_probe_timeout_default}}"
}

stx_meta_data() {
	cat <<END
<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="$name" version="1.0">
<version>1.1</version>
END
	stx_description
	cat <<END
<parameters>
<parameter name="binary" unique="0" required="0">
<longdesc lang="en">Path of the $name program.</longdesc>
<shortdesc lang="en">$name binary</shortdesc>
<content type="string" default="${OCF_RESKEY_binary_default}"/>
</parameter>
<parameter name="config" unique="1" required="0">
<longdesc lang="en">The configuration file, $name.conf(5).</longdesc>
<shortdesc lang="en">configuration file</shortdesc>
<content type="string" default="${OCF_RESKEY_config_default}"/>
</parameter>
<parameter name="pidfile" unique="1" required="0">
<longdesc lang="en">Where the agent keeps the daemon's process ID.</longdesc>
<shortdesc lang="en">PID file</shortdesc>
<content type="string" default="${OCF_RESKEY_pidfile_default}"/>
</parameter>
<parameter name="logfile" unique="0" required="0">
<longdesc lang="en">The daemon's standard output and error are appended here.</longdesc>
<shortdesc lang="en">log file</shortdesc>
<content type="string" default="${OCF_RESKEY_logfile_default}"/>
</parameter>
<parameter name="k8s_marker" unique="0" required="0">
<longdesc lang="en">A file that exists once Kubernetes is configured on this
system. Without it validate-all and start return OCF_ERR_CONFIGURED.</longdesc>
<shortdesc lang="en">Kubernetes marker file</shortdesc>
<content type="string" default="${OCF_RESKEY_k8s_marker_default}"/>
</parameter>
<parameter name="stop_timeout" unique="0" required="0">
<longdesc lang="en">Seconds to wait after SIGTERM before SIGKILL. Keep it
below the stop action's timeout.</longdesc>
<shortdesc lang="en">seconds before SIGKILL</shortdesc>
<content type="integer" default="${OCF_RESKEY_stop_timeout_default}"/>
</parameter>
<parameter name="probe_timeout" unique="0" required="0">
<longdesc lang="en">Seconds one monitor probe waits for /healthz.</longdesc>
<shortdesc lang="en">probe timeout</shortdesc>
<content type="integer" default="${OCF_RESKEY_probe_timeout_default}"/>
</parameter>
</parameters>
<actions>
<action name="start" timeout="15s"/>
<action name="stop" timeout="15s"/>
<action name="monitor" timeout="10s" interval="40s" depth="0"/>
<action name="status" timeout="10s"/>
<action name="reload" timeout="10s"/>
<action name="validate-all" timeout="10s"/>
<action name="meta-data" timeout="5s"/>
</actions>
</resource-agent>
END
}

stx_usage() {
	echo "usage: $0 {start|stop|monitor|status|validate-all|meta-data|reload|usage}"
}

# stx_pid prints the daemon's PID and succeeds when the PID file names a live
# process running the configured binary (not a recycled PID).
stx_pid() {
	[ -r "$OCF_RESKEY_pidfile" ] || return 1
	pid=$(head -c 32 "$OCF_RESKEY_pidfile" 2>/dev/null) || return 1
	case "$pid" in
	"" | *[!0-9]*) return 1 ;;
	esac
	kill -0 "$pid" 2>/dev/null || return 1
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	# A binary replaced by a package upgrade shows as "PATH (deleted)".
	exe=${exe% (deleted)}
	want=$(readlink -f "$OCF_RESKEY_binary" 2>/dev/null) || return 1
	[ "$exe" = "$want" ] || return 1
	echo "$pid"
}

# stx_validate checks what start needs, except what lives on the DRBD
# filesystem (the registry's root_directory, the token server's
# state_directory): a standby controller does not mount it; start checks it.
stx_validate() {
	case "$OCF_RESKEY_stop_timeout" in
	"" | *[!0-9]*)
		ocf_exit_reason "stop_timeout must be whole seconds, got '$OCF_RESKEY_stop_timeout'"
		return "$OCF_ERR_CONFIGURED" ;;
	esac
	case "$OCF_RESKEY_probe_timeout" in
	"" | 0 | *[!0-9]*)
		ocf_exit_reason "probe_timeout must be whole seconds above 0, got '$OCF_RESKEY_probe_timeout'"
		return "$OCF_ERR_CONFIGURED" ;;
	esac
	if [ ! -x "$OCF_RESKEY_binary" ]; then
		ocf_exit_reason "binary $OCF_RESKEY_binary is not an executable file: install $name or set binary"
		return "$OCF_ERR_INSTALLED"
	fi
	if [ ! -e "$OCF_RESKEY_k8s_marker" ]; then
		ocf_exit_reason "Kubernetes is not configured: $OCF_RESKEY_k8s_marker does not exist"
		return "$OCF_ERR_CONFIGURED"
	fi
	if [ ! -r "$OCF_RESKEY_config" ]; then
		ocf_exit_reason "config $OCF_RESKEY_config is not a readable file"
		return "$OCF_ERR_CONFIGURED"
	fi
	# probe -n checks the file, the keys and certificates as -t does, but
	# not the registry's storage root or the token server's
	# state_directory.
	if ! out=$("$OCF_RESKEY_binary" probe -n -f "$OCF_RESKEY_config" 2>&1); then
		ocf_exit_reason "$(printf '%s\n' "$out" | tail -n 1)"
		return "$OCF_ERR_CONFIGURED"
	fi
	return "$OCF_SUCCESS"
}

# running PID: the process we started still exists and is not a zombie
# (kill -0 alone would find our own dead child until this shell exits).
# Right after the fork it may still be this shell, before its exec, so its
# executable is not checked here; the pidfile checks do that.
running() {
	[ -r "/proc/$1/stat" ] || return 1
	state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d ' ' -f 1)
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

stx_monitor() {
	if ! stx_pid >/dev/null; then
		return "$OCF_NOT_RUNNING"
	fi
	out=$("$OCF_RESKEY_binary" probe -f "$OCF_RESKEY_config" -timeout "${OCF_RESKEY_probe_timeout}s" 2>&1)
	rc=$?
	case "$rc" in
	0) return "$OCF_SUCCESS" ;;
	7)
		ocf_log debug "$name: $out"
		return "$OCF_NOT_RUNNING" ;;
	*)
		ocf_exit_reason "$(printf '%s\n' "$out" | head -n 1)"
		return "$OCF_ERR_GENERIC" ;;
	esac
}

# stx_start_timeout prints how many seconds start may take.
stx_start_timeout() {
	ms=${OCF_RESKEY_CRM_meta_timeout:-}
	case "$ms" in
	"" | *[!0-9]*) echo "$start_timeout_default" ;;
	*) echo $((ms / 1000)) ;;
	esac
}

stx_start() {
	stx_validate || return $?
	# -t checks everything again, including what lives on the DRBD
	# filesystem: the registry never serves an empty root_directory, the
	# token server checks its users file and state_directory.
	if ! out=$("$OCF_RESKEY_binary" -t -f "$OCF_RESKEY_config" 2>&1); then
		# The daemon's last line that is not a hint says why, e.g.
		# "root_directory /var/lib/docker-distribution is not a mount
		# point (require_mount yes): is the DRBD filesystem mounted?".
		reason=$(printf '%s\n' "$out" | grep -v "^$name: hint:" | tail -n 1)
		ocf_exit_reason "${reason#"$name": }"
		return "$OCF_ERR_GENERIC"
	fi
	if stx_monitor; then
		ocf_log info "$name is already running"
		return "$OCF_SUCCESS"
	fi
	if ! pid=$(stx_pid); then
		mkdir -p "$(dirname "$OCF_RESKEY_pidfile")" || return "$OCF_ERR_GENERIC"
		# The daemon runs in the foreground; the shell's background job,
		# with no terminal and no shared descriptors, is its supervisor-
		# free start. $! is the daemon itself (no wrapper process).
		"$OCF_RESKEY_binary" -f "$OCF_RESKEY_config" </dev/null >>"$OCF_RESKEY_logfile" 2>&1 &
		pid=$!
		if ! echo "$pid" >"$OCF_RESKEY_pidfile"; then
			kill -KILL "$pid" 2>/dev/null
			ocf_exit_reason "cannot write pidfile $OCF_RESKEY_pidfile"
			return "$OCF_ERR_GENERIC"
		fi
	fi
	# Wait for a healthy monitor, for at most the start timeout.
	limit=$(($(date +%s) + $(stx_start_timeout)))
	while :; do
		if ! running "$pid"; then
			rm -f "$OCF_RESKEY_pidfile"
			ocf_exit_reason "$name exited while starting: $(tail -n 1 "$OCF_RESKEY_logfile" 2>/dev/null)"
			return "$OCF_ERR_GENERIC"
		fi
		stx_monitor
		rc=$?
		[ "$rc" -eq "$OCF_SUCCESS" ] && break
		if [ "$(date +%s)" -ge "$limit" ]; then
			ocf_exit_reason "$name did not become healthy within $(stx_start_timeout)s (monitor rc $rc)"
			return "$OCF_ERR_GENERIC"
		fi
		sleep "$poll"
	done
	ocf_log info "$name started, PID $pid"
	return "$OCF_SUCCESS"
}

stx_stop() {
	if ! pid=$(stx_pid); then
		rm -f "$OCF_RESKEY_pidfile"
		return "$OCF_SUCCESS"
	fi
	kill -TERM "$pid" 2>/dev/null
	limit=$(($(date +%s) + OCF_RESKEY_stop_timeout))
	while stx_pid >/dev/null; do
		if [ "$(date +%s)" -ge "$limit" ]; then
			ocf_log warn "$name PID $pid still runs ${OCF_RESKEY_stop_timeout}s after SIGTERM: sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null
			break
		fi
		sleep "$poll"
	done
	limit=$(($(date +%s) + kill_wait))
	while stx_pid >/dev/null; do
		if [ "$(date +%s)" -ge "$limit" ]; then
			ocf_exit_reason "$name PID $pid survived SIGKILL for ${kill_wait}s"
			return "$OCF_ERR_GENERIC"
		fi
		sleep "$poll"
	done
	rm -f "$OCF_RESKEY_pidfile"
	ocf_log info "$name stopped"
	return "$OCF_SUCCESS"
}

stx_reload() {
	if ! pid=$(stx_pid); then
		return "$OCF_NOT_RUNNING"
	fi
	# SIGHUP re-reads tls_certificate and tls_key.
	kill -HUP "$pid" || return "$OCF_ERR_GENERIC"
	return "$OCF_SUCCESS"
}

# stx_run runs the action ocf-shellfuncs found in the agent's arguments for
# daemon $1 and exits with its OCF code.
stx_run() {
	# name is what the daemon calls itself in its messages.
	name=$1
	stx_defaults
	case "${__OCF_ACTION:-}" in
	meta-data)
		stx_meta_data
		exit "$OCF_SUCCESS" ;;
	usage | help)
		stx_usage
		exit "$OCF_SUCCESS" ;;
	esac

	case "${__OCF_ACTION:-}" in
	start) stx_start ;;
	stop) stx_stop ;;
	monitor | status) stx_monitor ;;
	reload) stx_reload ;;
	validate-all) stx_validate ;;
	*)
		stx_usage
		exit "$OCF_ERR_UNIMPLEMENTED" ;;
	esac
	rc=$?
	ocf_log debug "${OCF_RESOURCE_INSTANCE:-$name} ${__OCF_ACTION:-} : $rc"
	exit "$rc"
}

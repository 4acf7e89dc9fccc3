# How a server's threads were scheduled, from
#   perf sched timehist -w --state
# (scripts/dns-bench --trace). Variables: pids, the server's process IDs
# separated by commas; secs, the length of the recording. Prints one line:
# the threads that ran, how often one was switched in, how often one was
# preempted (switched out while runnable), how often a server thread woke
# another server thread (the Go runtime waking an idle thread, e.g. at a
# yield), and how many of the preemptions came right after the preempted
# thread had woken a sibling.
#
# A line is either "TIME [CPU] COMM[TID/PID] WAIT SCHDELAY RUN STATE" or
# "TIME [CPU] COMM[TID/PID] awakened: COMM[TID/PID]"; COMM may hold spaces,
# and a process of one thread shows as COMM[TID].
BEGIN {
	n = split(pids, p, ",")
	for (i = 1; i <= n; i++) server[p[i]] = 1
}
function task(s,    m, k) {
	# "[TID/PID]", or "[TID]" for a process of one thread → the globals
	# tid and pid; returns where the match ends
	if (!match(s, /\[[0-9]+(\/[0-9]+)?\]/)) return 0
	m = substr(s, RSTART + 1, RLENGTH - 2)
	k = split(m, tp, "/")
	tid = tp[1]
	pid = (k == 2) ? tp[2] : tp[1]
	return RSTART + RLENGTH
}
{
	line = $0
	sub(/^ *[0-9.]+ +\[[0-9]+\] +/, "", line)
	end = task(line)
	if (!end) next
	wtid = tid
	wpid = pid
	rest = substr(line, end)
	if (rest ~ /awakened:/) {
		if (!task(rest)) next
		if ((wpid in server) && (pid in server)) {
			sibling++
			woke[wtid] = 1
		}
		next
	}
	if (!(wpid in server)) next
	ins++
	threads[wtid] = 1
	nf = split(rest, f, " ")
	if (f[nf] == "R") {
		preempted++
		if (wtid in woke) after++
	}
	delete woke[wtid]
}
END {
	t = 0
	for (k in threads) t++
	if (secs <= 0) secs = 1
	printf "threads %d, switch-ins %.0f/s, preempted %.0f/s (%.0f/s right after waking a sibling), sibling wake-ups %.0f/s\n",
		t, ins / secs, preempted / secs, after / secs, sibling / secs
}

package main

// Processes the bench starts, and what /proc says about them.

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"stx-registry/shared/testrig"
)

const (
	// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat;
	// 100 on every Linux architecture Go supports.
	clockTicks = 100
	// maxProcFileBytes bounds reading /proc/PID/status and stat.
	maxProcFileBytes = 64 << 10
)

// proc is one started process, named for messages.
type proc struct {
	name string
	*testrig.Proc
}

// procs tracks every process the bench starts, so that all are stopped,
// each by its PID, however the bench ends.
type procs struct {
	mu   sync.Mutex
	list []*proc
}

// start runs argv with its output appended to logPath.
func (ps *procs) start(name, logPath string, argv ...string) (*proc, error) {
	tp, err := testrig.Start(testrig.Cmd{Argv: argv, Log: logPath})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return ps.track(name, tp), nil
}

// track adds a process started elsewhere (Keystone) to the list.
func (ps *procs) track(name string, tp *testrig.Proc) *proc {
	p := &proc{name: name, Proc: tp}
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p
}

func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].Stop()
	}
}

// peakRSS is VmHWM of the process in MiB: the most resident memory it
// ever had.
func (p *proc) peakRSS() (float64, error) {
	b, err := readProc(p.PID(), "status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("%s: VmHWM %q: %w", p.name, v, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("%s: no VmHWM in /proc/%d/status", p.name, p.PID())
}

// cpuSeconds is the process's user plus system CPU time so far.
func (p *proc) cpuSeconds() (float64, error) {
	b, err := readProc(p.PID(), "stat")
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15, so the 12th and 13th after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: malformed /proc/%d/stat", p.name, p.PID())
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: short /proc/%d/stat", p.name, p.PID())
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: utime/stime in /proc/%d/stat are not numbers", p.name, p.PID())
	}
	return (ut + st) / clockTicks, nil
}

func readProc(pid int, file string) ([]byte, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, maxProcFileBytes)
	n, err := f.Read(b)
	if n == 0 && err != nil {
		return nil, err
	}
	return b[:n], nil
}

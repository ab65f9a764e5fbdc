package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, which
// Linux fixes at 100 in its ABI whatever the kernel's own tick rate.
const userHZ = 100

// procStat is what this package reads from /proc/<pid>/stat.
type procStat struct {
	ppid int
	cpu  time.Duration // utime + stime + cutime + cstime
}

// readStat parses /proc/<pid>/stat. The command name is in parentheses and
// may hold spaces, so fields are counted from the last ')'.
func readStat(proc string, pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("loadgen: /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("loadgen: /proc/%d/stat: %d fields", pid, len(f))
	}
	var st procStat
	if st.ppid, err = strconv.Atoi(f[1]); err != nil {
		return procStat{}, fmt.Errorf("loadgen: /proc/%d/stat ppid: %w", pid, err)
	}
	var ticks int64
	for _, s := range f[11:15] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("loadgen: /proc/%d/stat times: %w", pid, err)
		}
		ticks += n
	}
	st.cpu = time.Duration(ticks) * time.Second / userHZ
	return st, nil
}

// TreeCPU returns the CPU time (user and system) used so far by pid and all
// its descendants, including descendants that have exited and been reaped:
// each live process contributes its own time and that of its reaped
// children, so a dead process is counted once, in its parent. Postfix is
// such a tree (master, smtpd, cleanup, ...).
func TreeCPU(pid int) (time.Duration, error) { return treeCPU("/proc", pid) }

func treeCPU(proc string, pid int) (time.Duration, error) {
	root, err := readStat(proc, pid)
	if err != nil {
		return 0, fmt.Errorf("loadgen: cpu of %d: %w", pid, err)
	}
	ents, err := os.ReadDir(proc)
	if err != nil {
		return 0, fmt.Errorf("loadgen: cpu of %d: %w", pid, err)
	}
	parent := map[int]int{}
	cpu := map[int]time.Duration{pid: root.cpu}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p == pid {
			continue
		}
		st, err := readStat(proc, p)
		if err != nil {
			continue // exited meanwhile: its time is in its parent's
		}
		parent[p] = st.ppid
		cpu[p] = st.cpu
	}
	var total time.Duration
	for p, c := range cpu {
		if inTree(p, pid, parent) {
			total += c
		}
	}
	return total, nil
}

func inTree(p, root int, parent map[int]int) bool {
	for range 64 { // deeper than any real tree; guards a cycle from racing reads
		if p == root {
			return true
		}
		pp, ok := parent[p]
		if !ok || pp == p {
			return false
		}
		p = pp
	}
	return false
}

// PeakRSS returns the process's peak resident set size (VmHWM).
func PeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("loadgen: peak rss of %d: %w", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				break
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("loadgen: no VmHWM in /proc status")
}

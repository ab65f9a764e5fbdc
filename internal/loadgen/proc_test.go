package loadgen

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// fakeProc writes /proc/<pid>/stat files for treeCPU to read.
func fakeProc(t *testing.T, procs map[int][3]int) string {
	t.Helper()
	dir := t.TempDir()
	for pid, p := range procs { // p: ppid, own ticks, reaped children's ticks
		d := filepath.Join(dir, strconv.Itoa(pid))
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		// Fields after the name: state ppid pgrp session tty tpgid flags
		// minflt cminflt majflt cmajflt utime stime cutime cstime ...
		stat := fmt.Sprintf("%d (a name) with spaces) S %d 1 1 0 -1 0 0 0 0 0 %d 0 %d 0 20 0 1 0\n", pid, p[0], p[1], p[2])
		if err := os.WriteFile(filepath.Join(d, "stat"), []byte(stat), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(dir, "self"), 0o700) // not a pid: skipped
	return dir
}

func TestTreeCPUSumsDescendantsOnly(t *testing.T) {
	t.Parallel()
	proc := fakeProc(t, map[int][3]int{
		100: {1, 10, 5},   // the root, with 5 ticks of reaped children
		101: {100, 20, 0}, // its child
		102: {101, 30, 0}, // grandchild
		200: {1, 1000, 0}, // unrelated
		201: {200, 7, 0},  // unrelated child
	})
	got, err := treeCPU(proc, 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := 65 * time.Second / userHZ; got != want {
		t.Errorf("treeCPU = %s, want %s", got, want)
	}
	if _, err := treeCPU(proc, 999); err == nil {
		t.Error("treeCPU of a missing pid succeeded")
	}
}

func TestOwnCPUAndRSS(t *testing.T) {
	t.Parallel()
	before, err := TreeCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(100 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	after, err := TreeCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 20*time.Millisecond {
		t.Errorf("100ms of spinning shows as %s of CPU (%d)", after-before, x)
	}
	rss, err := PeakRSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Errorf("PeakRSS = %d, %v", rss, err)
	}
}

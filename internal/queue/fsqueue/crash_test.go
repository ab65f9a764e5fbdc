package fsqueue_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/internal/queue/fsqueue"
)

// crashEnv, when set in the environment, makes TestKillDuringSend the child:
// it sends to the file it names until it is killed.
const crashEnv = "FSQUEUE_CRASH_CHILD_DB"

// TestKillDuringSend: a process killed with SIGKILL while sending loses no
// message whose Send had returned. The child (this test binary, re-run)
// prints each id after Send returns; the parent kills it mid-stream and
// then receives every printed id from the file.
func TestKillDuringSend(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(t, path)
		return
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "queue.db")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestKillDuringSend$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}

	// Kill after enough acknowledged sends that commits are in flight,
	// then read what the child managed to print before it died.
	const killAfter = 300
	printed := map[string]bool{}
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		id, ok := strings.CutPrefix(sc.Text(), "sent ")
		if !ok {
			continue // go test's own output
		}
		printed[id] = true
		if len(printed) == killAfter && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill child: %v", err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child ended before printing %d ids (got %d): %v", killAfter, len(printed), err)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", err)
	}

	db := openDBAt(t, path)
	q := openQueue(t, db, "jobs", fsqueue.Config{})
	got := map[string]bool{}
	for {
		msgs, err := q.Receive(t.Context(), 100, time.Minute, 0)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			got[m.ID] = true
		}
	}
	lost := 0
	for id := range printed {
		if !got[id] {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged sends were lost", lost, len(printed))
	}
	t.Logf("child acknowledged %d sends before SIGKILL; all %d received (%d stored in all)", len(printed), len(printed), len(got))
}

// crashChild sends from several goroutines, so group commits are in
// progress when the kill lands, printing each id once Send returns. Each
// line is one write to the pipe, so it arrives whole or not at all.
func crashChild(t *testing.T, path string) {
	db, err := fsqueue.Open(path, fsqueue.Options{})
	if err != nil {
		t.Fatalf("child: Open: %v", err)
	}
	q, err := db.Queue("jobs", fsqueue.Config{})
	if err != nil {
		t.Fatalf("child: Queue: %v", err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id, err := q.Send(t.Context(), fmt.Appendf(nil, "child %d message %d", g, i), 0)
				if err != nil {
					t.Errorf("child: Send: %v", err)
					return
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "sent %s\n", id)
				mu.Unlock()
			}
		})
	}
	wg.Wait() // never returns unless Send fails: the parent kills us
}

package diskspace_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/internal/diskspace"
)

func TestGuardCachesAndCompares(t *testing.T) {
	t.Parallel()
	var free atomic.Uint64
	var calls atomic.Int32
	free.Store(2 << 30)
	clock := time.Unix(1_800_000_000, 0)
	g := diskspace.New("/data", 1<<30, diskspace.Options{
		Free: func(dir string) (uint64, error) {
			if dir != "/data" {
				t.Errorf("measured %q", dir)
			}
			calls.Add(1)
			return free.Load(), nil
		},
		Now: func() time.Time { return clock },
	})
	if g.Low() || g.Check() != nil {
		t.Fatal("2 GiB free reported low against 1 GiB")
	}
	free.Store(512 << 20)
	if g.Low() {
		t.Error("a new measurement was taken within the TTL")
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d measurements within the TTL, want 1", n)
	}
	clock = clock.Add(diskspace.DefaultTTL)
	if !g.Low() {
		t.Error("512 MiB free not reported low against 1 GiB after the TTL")
	}
	if err := g.Check(); err == nil || !strings.Contains(err.Error(), "free disk 536870912 bytes under limits.min_free_bytes 1073741824") {
		t.Errorf("Check = %v", err)
	}
}

func TestGuardMeasurementFailure(t *testing.T) {
	t.Parallel()
	g := diskspace.New("/data", 1, diskspace.Options{Free: func(string) (uint64, error) { return 0, errors.New("EIO") }})
	if g.Low() {
		t.Error("a failed measurement refused mail")
	}
	if err := g.Check(); err == nil || !strings.Contains(err.Error(), "EIO") {
		t.Errorf("Check = %v, want the failure", err)
	}
}

func TestFreeMeasuresARealDirectory(t *testing.T) {
	t.Parallel()
	n, err := diskspace.Free(t.TempDir())
	if err != nil || n == 0 {
		t.Fatalf("Free = %d, %v", n, err)
	}
	if _, err := diskspace.Free("/does/not/exist"); err == nil {
		t.Error("Free of a missing directory succeeded")
	}
}

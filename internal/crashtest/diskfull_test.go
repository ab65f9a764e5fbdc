//go:build crash

package crashtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mountSmallFS mounts a filesystem of size bytes (a tmpfs, or failing that
// an ext4 image on a loop device) on a new directory. Mounting needs root
// (CAP_SYS_ADMIN); where it is not allowed the test is skipped with that
// reason, or fails when CI=true or POSTERN_REQUIRE_STANDINS=1: CI runs as
// root, so a skip there would hide the test.
func mountSmallFS(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+size+",mode=0700")
	if err != nil {
		if lerr := mountLoopExt4(t, dir, size); lerr != nil {
			err = errors.Join(fmt.Errorf("tmpfs: %w", err), lerr)
		} else {
			err = nil
		}
	}
	if err != nil {
		msg := fmt.Sprintf("cannot mount a small filesystem to fill: %v; this test needs root (CAP_SYS_ADMIN): "+
			"run it as root, e.g. sudo -E go test -tags crash -run TestDiskFull ./internal/crashtest/", err)
		if os.Getenv("CI") == "true" || os.Getenv("POSTERN_REQUIRE_STANDINS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// mountLoopExt4 makes an ext4 image of size (such as "24m") and mounts it
// on dir through a loop device, with mkfs.ext4 and mount from e2fsprogs and
// util-linux (apt-get install e2fsprogs mount).
func mountLoopExt4(t *testing.T, dir, size string) error {
	t.Helper()
	img := filepath.Join(t.TempDir(), "small.img")
	out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img, size).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.ext4: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("mount", "-o", "loop,nosuid,nodev", img, dir).CombinedOutput(); err != nil {
		return fmt.Errorf("mount -o loop: %v: %s", err, strings.TrimSpace(string(out)))
	}
	// The root of a new ext4 belongs to root with mode 0755.
	return os.Chmod(dir, 0o700)
}

// fill appends to a file in dir until the filesystem is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4 << 10} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	return path
}

// TestDiskFullAnswers451 runs the real gateway with its data on a small
// filesystem and fills it up. While it is full every message must be
// answered 451 (never 250, never a 5xx) and the gateway must stay up; once
// there is room again mail must flow, and every message that got a 250 must
// be delivered while none that got a 451 is.
func TestDiskFullAnswers451(t *testing.T) {
	t.Parallel()
	mnt := mountSmallFS(t, "24m")
	rcv := newReceiver(t)
	// The free-space check (limits.min_free_bytes, 1 GiB by default) would
	// refuse every MAIL on so small a filesystem: this test is about writes
	// that fail, so it is off.
	gw := newGateway(t, filepath.Join(mnt, "data"), rcv.URL(), "limits: {min_free_bytes: 0}\n")
	l := newLedger()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	send(ctx, t, sendPlan{addr: gw.addr, prefix: "before", clients: 4, perClient: 5}, l)
	if len(l.acked) != 20 {
		t.Fatalf("%d of 20 messages accepted before the disk filled (%d attempts cut off, refusals %v)", len(l.acked), l.uncertain, l.codes)
	}
	waitDelivered(t, l, rcv, 30*time.Second)

	filler := fill(t, mnt)
	full := newLedger()
	send(ctx, t, sendPlan{addr: gw.addr, prefix: "full", clients: 4, perClient: 10, giveUp: true,
		size: func(int, int) int { return 64 << 10 }}, full)
	if len(full.acked) > 0 {
		t.Errorf("%d messages got 250 on a full disk", len(full.acked))
	}
	if len(full.refused) != 40 {
		t.Errorf("%d of 40 messages refused with an id on a full disk (%d attempts cut off, replies %v)", len(full.refused), full.uncertain, full.codes)
	}
	for code, n := range full.codes {
		if code != 451 {
			t.Errorf("%d replies %d on a full disk, want 451", n, code)
		}
	}
	for id, rep := range full.refused {
		if !strings.HasPrefix(rep, "451 4.3.0") {
			t.Errorf("message %s: %s, want 451 4.3.0", id, rep)
		}
	}
	if !gw.alive() {
		t.Fatal("the gateway died when the disk filled up")
	}
	t.Logf("disk full: %d refusals %v", len(full.refused), full.codes)

	// Nearly full: a little room at a time, so that writes fail at every
	// step (raw message, envelope, queue commit, later the parsed form)
	// and some messages still fit. What fits must be delivered.
	near := newLedger()
	for _, room := range []int64{4 << 10, 16 << 10, 48 << 10, 96 << 10} {
		fi, err := os.Stat(filler)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(filler, fi.Size()-room); err != nil {
			t.Fatal(err)
		}
		send(ctx, t, sendPlan{addr: gw.addr, prefix: "near" + strconv.FormatInt(room>>10, 10), clients: 4, perClient: 4,
			giveUp: true, size: func(int, int) int { return 1 << 10 }}, near)
		fill(t, mnt) // whatever the gateway did not take
	}
	for code, n := range near.codes {
		if code != 451 {
			t.Errorf("%d replies %d on a nearly full disk, want 451", n, code)
		}
	}
	t.Logf("nearly full: %d accepted, %d refused %v; spool writes failed: body %d, commit %d; mover retries %d",
		len(near.acked), len(near.refused), near.codes, gw.logCount("not accepted", "spool raw"),
		gw.logCount("not accepted", "spool: write")-gw.logCount("not accepted", "spool raw"),
		gw.logCount("moving messages to the store and queue failed"))
	for tag, id := range near.acked {
		l.acked[tag] = id
	}
	for id, rep := range near.refused {
		l.refused[id] = rep
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	before := l.ackedCount()
	send(ctx, t, sendPlan{addr: gw.addr, prefix: "after", clients: 4, perClient: 10,
		size: func(int, int) int { return 64 << 10 }}, l)
	if n := l.ackedCount() - before; n != 40 {
		t.Errorf("%d of 40 messages accepted once there was room again", n)
	}
	for id, rep := range full.refused {
		l.refused[id] = rep // none of these may ever be delivered
	}
	// Jobs that failed on the full disk wait out their backoff (seconds to a
	// minute or two under load) before they are delivered.
	waitDelivered(t, l, rcv, 3*time.Minute)

	// A failed write leaves nothing behind to keep the disk full.
	if ents, err := os.ReadDir(filepath.Join(mnt, "data", "store", "tmp")); err != nil || len(ents) > 0 {
		t.Errorf("store temp directory after the run: %d entries, %v", len(ents), err)
	}
}

package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/postern/postern/internal/blob"
)

// devicesEvery is how often the device table is saved (and at shutdown).
const devicesEvery = time.Minute

// devicesKey is where the local store keeps the device table. The store's
// Put is the one atomic write here (temp file, fsync, rename, fsync of the
// directory); retention only purges under m/.
const devicesKey = "state/devices.json"

// deviceFile is the saved device table; v versions its schema.
type deviceFile struct {
	V       int      `json:"v"`
	Day     string   `json:"day"` // the day MessagesToday counts
	Devices []Device `json:"devices"`
}

// deviceState keeps the device table in the store across restarts.
type deviceState struct {
	store blob.Store

	mu   sync.Mutex // guards last, and serializes saves
	last []byte     // what the latest save wrote, to skip unchanged saves
}

// load fills d from the saved table; none saved is an empty table.
func (s *deviceState) load(ctx context.Context, d *devices) error {
	rc, err := s.store.Get(ctx, devicesKey)
	if errors.Is(err, blob.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", devicesKey, err)
	}
	b, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	rc.Close()
	if err != nil {
		return fmt.Errorf("read %s: %w", devicesKey, err)
	}
	var f deviceFile
	if err := json.Unmarshal(b, &f); err != nil || f.V != 1 {
		return fmt.Errorf("read %s: not a version 1 device table (%v); move it aside to start an empty one", devicesKey, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.day = f.Day
	for _, dev := range f.Devices {
		if dev.Identity == "" {
			continue
		}
		d.by[dev.Identity] = &dev
	}
	s.mu.Lock()
	s.last = b
	s.mu.Unlock()
	return nil
}

// save writes d's table if it changed since the last save.
func (s *deviceState) save(ctx context.Context, d *devices) error {
	devs := d.list() // rolls the day over first
	d.mu.Lock()
	day := d.day
	d.mu.Unlock()
	b, err := json.Marshal(deviceFile{V: 1, Day: day, Devices: devs})
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if bytes.Equal(b, s.last) {
		return nil
	}
	if err := s.store.Put(ctx, devicesKey, bytes.NewReader(b), &blob.PutOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("write %s: %w", devicesKey, err)
	}
	s.last = b
	return nil
}

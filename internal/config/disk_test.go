package config

import (
	"strings"
	"testing"
	"time"
)

func TestRetentionAndMinFreeBytes(t *testing.T) {
	t.Parallel()
	c, err := Load("", noenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Retention.D() != 30*24*time.Hour || c.Limits.MinFreeBytes != 1<<30 {
		t.Errorf("defaults: retention %s, limits.min_free_bytes %d; want 720h and 1 GiB", c.Retention.D(), c.Limits.MinFreeBytes)
	}
	c, err = Load(write(t, `
retention: 48h
limits: {min_free_bytes: 0}
routes:
  - name: archive
    match: {recipients: ["*"]}
    directory: {path: outbox}
    retention: 2160h
`), noenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Retention.D() != 48*time.Hour || c.Limits.MinFreeBytes != 0 || c.Routes[0].Retention.D() != 2160*time.Hour {
		t.Errorf("parsed: retention %s, min_free_bytes %d, routes[0].retention %s", c.Retention.D(), c.Limits.MinFreeBytes, c.Routes[0].Retention.D())
	}

	_, err = Load(write(t, `
retention: 30m
limits: {min_free_bytes: -1}
routes:
  - name: a
    match: {recipients: ["*"]}
    directory: {path: outbox}
    retention: 10s
`), noenv)
	if err == nil {
		t.Fatal("invalid retention and min_free_bytes accepted")
	}
	for _, want := range []string{
		`retention: 30m0s is too short; set how long local mode keeps messages, at least 1h`,
		`limits.min_free_bytes: -1 must not be negative;`,
		`or 0 to turn the check off`,
		`routes[0].retention: 10s is too short; set at least 1h`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

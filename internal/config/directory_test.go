package config

import (
	"strings"
	"testing"
)

func TestDirectoryPayload(t *testing.T) {
	t.Parallel()
	c, err := Load(write(t, "hostname: a\nroutes:\n  - name: files\n    match: {recipients: [\"*\"]}\n    directory: {path: outbox, payload: raw}\n"), noenv)
	if err != nil || c.Routes[0].Directory.Payload != "raw" {
		t.Fatalf("directory.payload: raw: %v", err)
	}
	_, err = Load(write(t, "hostname: a\nroutes:\n  - name: files\n    match: {recipients: [\"*\"]}\n    directory: {path: outbox, payload: eml}\n"), noenv)
	if want := `routes[0].directory.payload: "eml" is not one of json, raw`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("directory.payload: eml: %v, want %q", err, want)
	}
}

package app_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/config"
)

// Every file under data_dir that holds mail (store objects, spool segments,
// directory-route output, file-relay output, failure notices in
// dsn-outbox/) is readable by the service user only, and so is every
// directory, whatever the umask lets through.
func TestFilesHoldingMailArePrivate(t *testing.T) {
	t.Parallel()
	h, hs := newHook(t)
	h.status = 410 // a permanent failure, so a notice is written to dsn-outbox/
	cfg := testConfig(t, hs.URL)
	cfg.Identities[0].AllowedSenders = []string{"*@lan.example"}
	cfg.Routes = append([]config.Route{{Name: "relayed", Match: config.Match{Recipients: []string{"*@relay.test"}},
		Relay: &config.Relay{Type: "file", Path: "relayed"}}}, cfg.Routes...)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := boot(t, cfg)
	for _, rcpt := range []string{"a@files.test", "b@relay.test", "c@app.test"} {
		if _, err := send(t, a.SMTPAddrs()[0].String(), "scanner@lan.example", []string{rcpt},
			[]byte("From: scanner@lan.example\r\nSubject: payroll\r\n\r\nconfidential\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{"outbox", "relayed", cfg.DSN.Relay.Path} {
		dir = filepath.Join(cfg.DataDir, dir)
		waitFor(t, func() []string { return finished(dir) })
	}

	// Files that hold no mail and may be read by others.
	public := map[string]bool{"tls/selfsigned.crt": true}
	seen := map[string]bool{}
	err := filepath.WalkDir(cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) { // a temp file renamed or removed meanwhile
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(cfg.DataDir, path)
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		perm := fi.Mode().Perm()
		switch {
		case d.IsDir() && path != cfg.DataDir:
			if perm != 0o700 {
				t.Errorf("directory %s is %#o, want 0700", rel, perm)
			}
		case fi.Mode().IsRegular() && !public[filepath.ToSlash(rel)]:
			if perm != 0o600 {
				t.Errorf("file %s is %#o, want 0600", rel, perm)
			}
			seen[strings.SplitN(filepath.ToSlash(rel), "/", 2)[0]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The walk must have met each kind of file, or it proved nothing.
	for _, top := range []string{"outbox", "relayed", cfg.DSN.Relay.Path, "spool", "store"} {
		if !seen[top] {
			t.Errorf("no file under %s/ was checked; data_dir holds %v", top, seen)
		}
	}
}

// finished lists the files in dir that are not temp files.
func finished(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

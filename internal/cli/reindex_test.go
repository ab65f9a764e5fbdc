package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/msgindex"
	"github.com/postern/postern/internal/postern"
)

// gateway reindex rebuilds the index from the store, and refuses to while
// something (a running gateway) holds the index.
func TestReindex(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfgPath := filepath.Join(dir, "postern.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`data_dir: %s
listeners: [{name: smtp, addr: "127.0.0.1:0"}]
routes:
  - name: files
    match: {recipients: ["*"]}
    directory: {path: outbox}
`, data)), 0o600)
	store, err := fsblob.New(filepath.Join(data, "store"), fsblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	env := postern.Envelope{V: postern.EnvelopeVersion, ID: postern.NewMsgID(), Sender: "scan@lan.test",
		Recipients: []postern.Recipient{{Addr: "ops@files.test"}}, ReceivedAt: time.Now().UTC(), Size: 10}
	b, _ := json.Marshal(env)
	if err := store.Put(context.Background(), env.ID.EnvelopeKey(), bytes.NewReader(b), nil); err != nil {
		t.Fatal(err)
	}
	store.Close()

	code, out, errs := runCLI(t, "", "reindex", "-config", cfgPath)
	if code != 0 || !strings.Contains(out, "indexed 1 message(s)") {
		t.Fatalf("reindex: exit %d, %q %q", code, out, errs)
	}
	idx, err := msgindex.Open(filepath.Join(data, "index.db"), msgindex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m, ok, err := idx.Get(env.ID); !ok || err != nil || m.Sender != "scan@lan.test" || m.Status != msgindex.StatusPending {
		t.Errorf("rebuilt row: %+v %v %v", m, ok, err)
	}
	code, _, errs = runCLI(t, "", "reindex", "-config", cfgPath)
	idx.Close()
	if code != 1 || !strings.Contains(errs, "stop the gateway") {
		t.Errorf("reindex beside a holder of the index: exit %d, %q", code, errs)
	}
	if code, _, _ := runCLI(t, "", "reindex", "-config", cfgPath, "extra"); code != 2 {
		t.Errorf("an extra argument: exit %d", code)
	}
}

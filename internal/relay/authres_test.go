package relay_test

import (
	"bytes"
	"testing"

	"github.com/postern/postern/internal/relay/relaytest"
	"github.com/postern/postern/internal/relay/smtprelay"
)

// The copy relayed starts with the job's Authentication-Results field;
// the stored message stays as received.
func TestRelayPrependsAuthResults(t *testing.T) {
	t.Parallel()
	srv := relaytest.NewServer(t, relaytest.Options{})
	tr, err := smtprelay.New(smtprelay.Config{Addr: srv.Addr, TLS: smtprelay.TLSNone, LocalName: "gw.example.net", Name: "mx.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, tr)
	f.job.Recipients = []string{"a@example.com"}
	f.job.AuthResults = "gw.example.net;\r\n\tspf=pass smtp.mailfrom=lan.example;\r\n\tdmarc=none"
	if err := f.handle(t, f.handler(t), 1); err != nil {
		t.Fatal(err)
	}
	txs := srv.Txs()
	want := "Authentication-Results: gw.example.net;\r\n\tspf=pass smtp.mailfrom=lan.example;\r\n\tdmarc=none\r\n" + testRaw
	if len(txs) != 1 || string(txs[0].Data) != want {
		t.Fatalf("transactions %+v, want one with data %q", txs, want)
	}
	rc, err := f.store.Get(t.Context(), testID.RawKey())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var stored bytes.Buffer
	stored.ReadFrom(rc)
	if stored.String() != testRaw {
		t.Errorf("stored message changed: %q", stored.String())
	}
}

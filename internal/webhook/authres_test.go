package webhook

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
)

var testAuth = &postern.Auth{
	SPF:   postern.AuthSPF{Result: "fail", Domain: "good.example", Scope: "mailfrom", Reason: "client not permitted"},
	DKIM:  []postern.AuthDKIM{{Result: "pass", Domain: "good.example", Selector: "sel", Algorithm: "ed25519-sha256"}, {Result: "fail", Domain: "other.example", Selector: "s2", Algorithm: "rsa-sha256", Reason: "body hash did not verify"}},
	DMARC: postern.AuthDMARC{Result: "pass", Policy: "reject", Domain: "good.example", AlignedDKIM: true},
	ARC:   &postern.AuthARC{Result: "none", Reason: "not verified", Sets: []postern.AuthARCSet{{Instance: 1, AuthServID: "mx.fwd.example", Results: "spf=pass", ChainValidation: "none"}}},
}

const testAuthResults = "mx.corp.example;\r\n\tspf=fail smtp.mailfrom=good.example;\r\n\tdkim=pass header.d=good.example;\r\n\tdmarc=pass header.from=good.example"

// The JSON payload carries the verdicts as the "auth" object, under the
// names the README documents.
func TestPayloadAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.parsed.Auth = testAuth
	pj, _ := json.Marshal(f.parsed)
	f.put(t, f.job.ID.ParsedKey(), pj)
	rec := &recorder{}
	h := f.handler(t, Target{URL: serve(t, rec).URL, Secrets: [][]byte{testSecret}}, &fakeSender{}, testNow)
	if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
		t.Fatal(err)
	}
	var body struct {
		Data struct {
			Auth json.RawMessage `json:"auth"`
		} `json:"data"`
	}
	if err := json.Unmarshal(rec.requests()[0].body, &body); err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal(body.Data.Auth, &got); err != nil {
		t.Fatalf("auth %s: %v", body.Data.Auth, err)
	}
	json.Unmarshal([]byte(`{
		"spf": {"result": "fail", "domain": "good.example", "scope": "mailfrom", "reason": "client not permitted"},
		"dkim": [
			{"result": "pass", "domain": "good.example", "selector": "sel", "algorithm": "ed25519-sha256", "reason": ""},
			{"result": "fail", "domain": "other.example", "selector": "s2", "algorithm": "rsa-sha256", "reason": "body hash did not verify"}
		],
		"dmarc": {"result": "pass", "policy": "reject", "domain": "good.example", "aligned_spf": false, "aligned_dkim": true, "reason": ""},
		"arc": {"result": "none", "reason": "not verified", "sets": [{"instance": 1, "authserv_id": "mx.fwd.example", "results": "spf=pass", "cv": "none"}]}
	}`), &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("auth = %s", body.Data.Auth)
	}
}

// A parsed form from before the checks has no verdicts, and the payload
// says null rather than something made up.
func TestPayloadWithoutAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := &recorder{}
	h := f.handler(t, Target{URL: serve(t, rec).URL, Secrets: [][]byte{testSecret}}, &fakeSender{}, testNow)
	if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(rec.requests()[0].body, []byte(`"auth":null`)) {
		t.Errorf("payload has no null auth: %s", rec.requests()[0].body)
	}
}

// A raw payload starts with the job's Authentication-Results field, over
// both read paths, signed as sent; the stored message stays as received.
func TestRawPayloadAuthResults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		size int
	}{{"small", 0}, {"over the in-memory bound", rawInMemoryMax + 1}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if tc.size > 0 {
				f.raw = append(f.raw, bytes.Repeat([]byte("x"), tc.size)...)
				f.put(t, f.job.ID.RawKey(), f.raw)
			}
			f.job.AuthResults = testAuthResults
			rec := &recorder{}
			h := f.handler(t, Target{URL: serve(t, rec).URL, Secrets: [][]byte{testSecret}, Payload: PayloadRaw}, &fakeSender{}, testNow)
			if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
				t.Fatal(err)
			}
			r := rec.requests()[0]
			want := append([]byte("Authentication-Results: "+testAuthResults+"\r\n"), f.raw...)
			if !bytes.Equal(r.body, want) {
				t.Errorf("body starts %q, want %q", r.body[:min(len(r.body), 200)], want[:200])
			}
			if err := Verify([][]byte{testSecret}, r.header, r.body, time.Minute, testNow); err != nil {
				t.Errorf("Verify: %v", err)
			}
			if stored, _ := f.store.Bytes(f.job.ID.RawKey()); !bytes.Equal(stored, f.raw) {
				t.Error("the stored message changed")
			}
		})
	}
}

func TestDirectoryRawAuthResults(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.job.AuthResults = testAuthResults
	dir := t.TempDir()
	h := f.handler(t, Target{Dir: dir, Payload: PayloadRaw}, &fakeSender{}, testNow)
	if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, string(f.job.ID)+".scans.eml"))
	if want := "Authentication-Results: " + testAuthResults + "\r\n" + string(f.raw); err != nil || string(b) != want {
		t.Fatalf("raw file = %q, %v; want %q", b, err, want)
	}
}

package webhook

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
)

// keyShapes walks a decoded JSON value and records, for every object, its
// path (array elements as "[]") and its sorted keys. Two objects at one path
// with different keys, and any null, are reported through bad.
func keyShapes(path string, v any, shapes map[string]string, bad func(string)) {
	switch v := v.(type) {
	case nil:
		bad(path + " is null")
	case map[string]any:
		keys := strings.Join(slices.Sorted(maps.Keys(v)), ",")
		if prev, ok := shapes[path]; ok && prev != keys {
			bad(path + " has keys {" + keys + "} here and {" + prev + "} elsewhere")
		}
		shapes[path] = keys
		for k, e := range v {
			keyShapes(path+"."+k, e, shapes, bad)
		}
	case []any:
		for _, e := range v {
			keyShapes(path+"[]", e, shapes, bad)
		}
	}
}

// The JSON payload of a message with nothing in it but a body has the same
// keys, at every depth, as one with every field filled: receivers never test
// for a key.
func TestPayloadStableKeys(t *testing.T) {
	t.Parallel()
	full := newFixture(t)
	full.parsed.Sender = []postern.Address{{Name: "Front desk", Address: "desk@dev.example"}}
	full.parsed.TextDerived = true
	full.parsed.Auth = testAuth
	full.parsed.Errors[0].Severe = true

	minimal := newFixture(t)
	minimal.job.Envelope.Identity = ""
	minimal.job.Envelope.AuthMech = ""
	minimal.job.Envelope.Listener = ""
	minimal.job.Envelope.TLS = nil
	minimal.job.Envelope.Sender = ""
	minimal.parsed = postern.Parsed{
		V: postern.ParsedVersion, ID: minimal.job.ID, Text: "hello",
		Auth: &postern.Auth{SPF: postern.AuthSPF{Result: "none"}, DMARC: postern.AuthDMARC{Result: "none"}},
	}

	shapes := map[string]string{}
	top := map[string]map[string]bool{}
	for name, f := range map[string]*fixture{"full": full, "minimal": minimal} {
		f.job.Parsed = nil
		pj, err := json.Marshal(f.parsed)
		if err != nil {
			t.Fatal(err)
		}
		f.put(t, f.job.ID.ParsedKey(), pj)
		rec := &recorder{}
		h := f.handler(t, Target{URL: serve(t, rec).URL, Secrets: [][]byte{testSecret}}, &fakeSender{}, testNow)
		if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
			t.Fatal(err)
		}
		reqs := rec.requests()
		if len(reqs) != 1 {
			t.Fatalf("%s: %d requests", name, len(reqs))
		}
		var body any
		if err := json.Unmarshal(reqs[0].body, &body); err != nil {
			t.Fatal(err)
		}
		mine := map[string]string{}
		keyShapes("", body, mine, func(s string) { t.Errorf("%s payload: %s", name, s) })
		top[name] = map[string]bool{}
		for path, keys := range mine {
			if prev, ok := shapes[path]; ok && prev != keys {
				t.Errorf("%s has keys {%s}, the other payload {%s}", path, keys, prev)
			}
			shapes[path] = keys
			if !strings.Contains(path, "[]") {
				top[name][path] = true
			}
		}
	}
	// Objects outside arrays are in both; array elements, where the minimal
	// message has none, were compared with each other above.
	if !maps.Equal(top["full"], top["minimal"]) {
		t.Errorf("object paths differ:\nfull    %v\nminimal %v", slices.Sorted(maps.Keys(top["full"])), slices.Sorted(maps.Keys(top["minimal"])))
	}
	for _, p := range []string{".data.attachments[]", ".data.auth.dkim[]", ".data.auth.arc.sets[]", ".data.headers[]", ".data.parse_errors[]", ".data.sender[]"} {
		if _, ok := shapes[p]; !ok {
			t.Errorf("the full payload has no %s element: the test does not cover its keys", p)
		}
	}
	if got := shapes[".data.envelope"]; got != "listener,recipients,sender" {
		t.Errorf("envelope keys = %s", got)
	}
}

// A raw payload carries the envelope in webhook-postern-envelope, as ASCII
// whatever the addresses hold, and signed with the body: over both read
// paths, Verify and the VERIFY.md code accept the request as sent and
// refuse it with the header changed or removed.
func TestRawPayloadEnvelopeHeader(t *testing.T) {
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
			f.job.Envelope.Sender = "jürgen@dev.example"
			f.job.Envelope.HELO = "scanner.lan\r\nX-Injected: 1"
			rec := &recorder{}
			h := f.handler(t, Target{URL: serve(t, rec).URL, Secrets: [][]byte{testSecret}, Payload: PayloadRaw}, &fakeSender{}, testNow)
			if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
				t.Fatal(err)
			}
			r := rec.requests()[0]
			if !bytes.Equal(r.body, f.raw) {
				t.Fatalf("body is not the message (%d bytes, want %d)", len(r.body), len(f.raw))
			}
			if r.header.Get("X-Injected") != "" {
				t.Error("the HELO name injected a header")
			}
			value := r.header.Get(HeaderEnvelope)
			if !regexp.MustCompile(`^[A-Za-z0-9_-]+$`).MatchString(value) {
				t.Fatalf("%s = %q, want unpadded base64url", HeaderEnvelope, value)
			}
			raw, err := base64.RawURLEncoding.DecodeString(value)
			if err != nil {
				t.Fatal(err)
			}
			var got RawEnvelope
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("decode envelope %s: %v", raw, err)
			}
			e := f.job.Envelope
			want := RawEnvelope{V: 1, ID: f.job.ID, Route: "scans", Sender: "jürgen@dev.example", Recipients: f.job.Recipients,
				Identity: "scanner-2f", ClientIP: "192.0.2.10", HELO: e.HELO, Listener: "submission", ReceivedAt: e.ReceivedAt.UTC()}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("envelope = %+v\nwant       %+v", got, want)
			}

			secret := "whsec_" + base64.StdEncoding.EncodeToString(testSecret)
			if err := Verify([][]byte{testSecret}, r.header, r.body, time.Minute, testNow); err != nil {
				t.Errorf("Verify: %v", err)
			}
			if err := verifyWebhook(secret, r.header, r.body, testNow); err != nil {
				t.Errorf("verifyWebhook: %v", err)
			}
			other := want
			other.Recipients = []string{"attacker@evil.example"}
			ob, _ := json.Marshal(other)
			tampered, removed := r.header.Clone(), r.header.Clone()
			tampered.Set(HeaderEnvelope, base64.RawURLEncoding.EncodeToString(ob))
			removed.Del(HeaderEnvelope)
			for name, hdr := range map[string]http.Header{"tampered": tampered, "removed": removed} {
				if err := Verify([][]byte{testSecret}, hdr, r.body, time.Minute, testNow); err == nil {
					t.Errorf("Verify accepted the envelope header %s", name)
				}
				if err := verifyWebhook(secret, hdr, r.body, testNow); err == nil {
					t.Errorf("verifyWebhook accepted the envelope header %s", name)
				}
			}
		})
	}
}

// A JSON payload has the envelope in its body and no envelope header.
func TestJSONPayloadNoEnvelopeHeader(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := &recorder{}
	h := f.handler(t, Target{URL: serve(t, rec).URL, Secrets: [][]byte{testSecret}}, &fakeSender{}, testNow)
	if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
		t.Fatal(err)
	}
	if v := rec.requests()[0].header.Get(HeaderEnvelope); v != "" {
		t.Errorf("JSON payload has %s: %s", HeaderEnvelope, v)
	}
}

package webhook

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

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

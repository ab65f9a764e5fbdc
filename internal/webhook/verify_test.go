package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The receiver-side helpers published in VERIFY.md are checked here: its
// test vectors against Sign and Verify, its Go code (kept verbatim below,
// between the markers) against the same vectors and tamperings, and its
// Python code by running it when python3 is installed.

// BEGIN VERIFY.md

// verifyWebhook checks a Postern webhook request. secret is the route's
// secret as configured; body is the request body exactly as received.
func verifyWebhook(secret string, header http.Header, body []byte, now time.Time) error {
	key := []byte(secret)
	if enc, ok := strings.CutPrefix(secret, "whsec_"); ok {
		var err error
		if key, err = base64.StdEncoding.DecodeString(enc); err != nil {
			return errors.New("secret: bad base64 after whsec_")
		}
	}
	id, ts := header.Get("webhook-id"), header.Get("webhook-timestamp")
	unix, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil {
		return errors.New("missing webhook-id or webhook-timestamp")
	}
	if d := now.Unix() - unix; d > 300 || d < -300 {
		return errors.New("webhook-timestamp too far from now")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	if env := header.Get("webhook-postern-envelope"); env != "" {
		mac.Write([]byte(env + ".")) // payload: raw: the envelope is signed too
	}
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(header.Get("webhook-signature")) {
		version, enc, _ := strings.Cut(sig, ",")
		got, err := base64.StdEncoding.DecodeString(enc)
		if version == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no valid signature")
}

// END VERIFY.md

// vector is one test vector of testdata/verify-vectors.json.
type vector struct {
	Secret    string `json:"secret"`
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	Body      string `json:"body"`
	Signature string `json:"signature"`
	Envelope  string `json:"envelope"` // webhook-postern-envelope; "" for none
}

func (v vector) header() http.Header {
	h := hdr(v.ID, v.Timestamp, v.Signature)
	if v.Envelope != "" {
		h.Set(HeaderEnvelope, v.Envelope)
	}
	return h
}

// hdr builds request headers as a server sees them (canonical keys),
// leaving out empty values.
func hdr(id, ts, sig string) http.Header {
	h := http.Header{}
	for k, v := range map[string]string{HeaderID: id, HeaderTimestamp: ts, HeaderSignature: sig} {
		if v != "" {
			h.Set(k, v)
		}
	}
	return h
}

func (v vector) time(t *testing.T) time.Time {
	t.Helper()
	unix, err := strconv.ParseInt(v.Timestamp, 10, 64)
	if err != nil {
		t.Fatalf("vector timestamp %q: %v", v.Timestamp, err)
	}
	return time.Unix(unix, 0)
}

func readVerifyDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("VERIFY.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// docVectors reads the test vectors VERIFY.md points to.
func docVectors(t *testing.T) []vector {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "verify-vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []vector
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("testdata/verify-vectors.json: %v", err)
	}
	if len(out) < 3 || out[2].Envelope == "" {
		t.Fatalf("testdata/verify-vectors.json: %d vectors, want 3, the third with an envelope header", len(out))
	}
	return out
}

// codeBlock returns the first fenced block of the given language.
func codeBlock(t *testing.T, doc, lang string) string {
	t.Helper()
	m := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```").FindStringSubmatch(doc)
	if m == nil {
		t.Fatalf("VERIFY.md has no %s block", lang)
	}
	return m[1]
}

// tamperings are requests a receiver must refuse: each changes one thing.
func tamperings(v vector, at time.Time) map[string]struct {
	h    http.Header
	body []byte
	now  time.Time
} {
	type req = struct {
		h    http.Header
		body []byte
		now  time.Time
	}
	body := []byte(v.Body)
	flipped := bytes.Clone(body)
	flipped[len(flipped)/2] ^= 0x01
	otherID, otherTS := v.header(), v.header()
	otherID.Set(HeaderID, v.ID+"x")
	otherTS.Set(HeaderTimestamp, strconv.FormatInt(at.Unix()+1, 10))
	otherVersion := v.header()
	otherVersion.Set(HeaderSignature, "v2,"+strings.TrimPrefix(v.Signature, "v1,"))
	// The envelope header is signed: a changed, removed or added one fails.
	otherEnvelope := v.header()
	if v.Envelope == "" {
		otherEnvelope.Set(HeaderEnvelope, "e30") // {}
	} else {
		otherEnvelope.Del(HeaderEnvelope)
	}
	out := map[string]req{
		"tampered body":                    {v.header(), flipped, at},
		"other id":                         {otherID, body, at},
		"other timestamp":                  {otherTS, body, at},
		"other version":                    {otherVersion, body, at},
		"six minutes late":                 {v.header(), body, at.Add(6 * time.Minute)},
		"six minutes early":                {v.header(), body, at.Add(-6 * time.Minute)},
		"no signature":                     {hdr(v.ID, v.Timestamp, ""), body, at},
		"no id":                            {hdr("", v.Timestamp, v.Signature), body, at},
		"signature mangled":                {hdr(v.ID, v.Timestamp, v.Signature+"A"), body, at},
		"timestamp not unix":               {hdr(v.ID, "x"+v.Timestamp, v.Signature), body, at},
		"envelope header added or removed": {otherEnvelope, body, at},
	}
	if v.Envelope != "" {
		// Another recipient, as an attacker would write it: valid base64url JSON.
		raw, err := base64.RawURLEncoding.DecodeString(v.Envelope)
		if err != nil {
			panic(err)
		}
		changed := v.header()
		changed.Set(HeaderEnvelope, base64.RawURLEncoding.EncodeToString(bytes.Replace(raw, []byte("inbox@"), []byte("admin@"), 1)))
		out["tampered envelope"] = req{changed, body, at}
	}
	return out
}

func TestVerifyDocVectors(t *testing.T) {
	t.Parallel()
	for _, v := range docVectors(t) {
		at := v.time(t)
		key, err := ParseSecret(v.Secret)
		if err != nil {
			t.Fatal(err)
		}
		if got := Sign(key, v.ID, at, signedBody(v.Envelope, []byte(v.Body))); got != v.Signature {
			t.Errorf("Sign(%s) = %s, want %s (testdata/verify-vectors.json)", v.ID, got, v.Signature)
		}
		if err := Verify([][]byte{key}, v.header(), []byte(v.Body), 0, at.Add(4*time.Minute)); err != nil {
			t.Errorf("Verify(%s): %v", v.ID, err)
		}
		if err := verifyWebhook(v.Secret, v.header(), []byte(v.Body), at.Add(-4*time.Minute)); err != nil {
			t.Errorf("verifyWebhook(%s): %v", v.ID, err)
		}
		// During a rotation the header has two signatures; either key passes.
		rotated := v.header()
		rotated.Set(HeaderSignature, Sign([]byte("the other key"), v.ID, at, signedBody(v.Envelope, []byte(v.Body)))+" "+v.Signature)
		if err := verifyWebhook(v.Secret, rotated, []byte(v.Body), at); err != nil {
			t.Errorf("verifyWebhook(%s) with two signatures: %v", v.ID, err)
		}
		for name, r := range tamperings(v, at) {
			if err := Verify([][]byte{key}, r.h, r.body, 0, r.now); err == nil {
				t.Errorf("Verify(%s) accepted %s", v.ID, name)
			}
			if err := verifyWebhook(v.Secret, r.h, r.body, r.now); err == nil {
				t.Errorf("verifyWebhook(%s) accepted %s", v.ID, name)
			}
		}
	}
}

// The Go code in VERIFY.md is the code tested above.
func TestVerifyDocGoMatches(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("verify_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(src), "// BEGIN VERIFY.md\n\n")
	fn, _, ok2 := strings.Cut(rest, "\n// END VERIFY.md")
	if !ok || !ok2 {
		t.Fatal("verify_test.go: markers not found")
	}
	if block := codeBlock(t, readVerifyDoc(t), "go"); !strings.Contains(block, fn) {
		t.Errorf("the Go block in VERIFY.md differs from verifyWebhook in verify_test.go; copy one to the other")
	}
}

// The Python code in VERIFY.md accepts the vectors and refuses the
// tamperings.
func TestVerifyDocPython(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	doc := readVerifyDoc(t)
	type pyCase struct {
		Secret  string            `json:"secret"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
		Now     int64             `json:"now"`
		Want    bool              `json:"want"`
		Name    string            `json:"name"`
	}
	flat := func(h http.Header) map[string]string {
		m := map[string]string{}
		for k := range h {
			m[strings.ToLower(k)] = h.Get(k)
		}
		return m
	}
	var cases []pyCase
	for _, v := range docVectors(t) {
		at := v.time(t)
		cases = append(cases, pyCase{v.Secret, flat(v.header()), v.Body, at.Unix() + 299, true, v.ID + " as published"})
		for name, r := range tamperings(v, at) {
			cases = append(cases, pyCase{v.Secret, flat(r.h), string(r.body), r.now.Unix(), false, v.ID + " " + name})
		}
	}
	input, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	script := codeBlock(t, doc, "python") + `
import json, sys
failed = 0
for c in json.load(sys.stdin):
    got = verify_webhook(c["secret"], c["headers"], c["body"].encode("utf-8"), now=c["now"])
    if got != c["want"]:
        failed += 1
        print("FAIL", c["name"], "got", got)
sys.exit(1 if failed else 0)
`
	cmd := exec.CommandContext(t.Context(), py, "-c", script)
	cmd.Stdin = bytes.NewReader(input)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
}

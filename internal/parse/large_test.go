package parse

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/route"
)

// newHarnessCfg is newHarness with the stage's Config given.
func newHarnessCfg(t *testing.T, cfg Config) *harness {
	t.Helper()
	table, err := route.New(testRules)
	if err != nil {
		t.Fatal(err)
	}
	hs := &harness{store: newMemStore(), wh: &recorder{}, relay: &recorder{}, dsn: &recorder{}, logs: &logWriter{t: t}}
	cfg.Now = func() time.Time { return testNow }
	out := Outbox{Webhook: hs.wh, Relay: hs.relay, DSN: hs.dsn}
	hs.h = New(cfg, hs.store, table, out, slog.New(slog.NewJSONHandler(hs.logs, nil)))
	return hs
}

// handled runs raw through the stage and returns the parsed form with every
// attachment's bytes in Content (read back from the store when stored), the
// key cut to its last element, and the id cleared, so two runs compare.
func handled(t *testing.T, hs *harness, raw []byte) *postern.Parsed {
	t.Helper()
	id, _, body := hs.submit(t, raw, "ops@example.com")
	if err := hs.h.Handle(context.Background(), postern.Job{Body: body, Attempt: 1}); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	p := decode[postern.Parsed](t, hs.store.object(t, id.ParsedKey()))
	if p.Envelope == nil || p.Envelope.ID != id {
		t.Errorf("parsed form keeps envelope %+v, want the job's", p.Envelope)
	}
	p.ID, p.Envelope = "", nil // differ between harnesses
	for i := range p.Attachments {
		a := &p.Attachments[i]
		if a.Key != "" {
			if a.Content != nil {
				t.Errorf("attachment %d has a key and content", i)
			}
			a.Content = hs.store.object(t, a.Key)
			a.Key = strings.TrimPrefix(a.Key, id.Prefix())
		}
	}
	return &p
}

// largeCfg sends every message down the large-message path with a skeleton
// that leaves out every leaf part over 16 bytes.
func largeCfg() Config {
	return Config{
		InlineAttachmentMax: testInlineMax,
		StreamAbove:         1,
		large:               largeLimits{skeletonMax: 1 << 20, elideAbove: 16, bodyMax: 1 << 20, headerMax: 1 << 20},
	}
}

func testMessages(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/corpus/*.eml")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("testdata/*.eml")
	out := map[string][]byte{}
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".eml")] = b
	}
	out["built"] = buildMessage(t).raw
	return out
}

// The large-message path gives what parsing the whole message gives, on
// every message of the corpus: the same tree, bodies, names, errors, and the
// same attachment bytes, sizes, hashes and sniffed types.
func TestLargePathMatchesWholeParse(t *testing.T) {
	t.Parallel()
	for name, raw := range testMessages(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			whole := handled(t, newHarnessCfg(t, Config{InlineAttachmentMax: testInlineMax}), raw)
			hs := newHarnessCfg(t, largeCfg())
			large := handled(t, hs, raw)
			a, _ := json.MarshalIndent(whole, "", " ")
			b, _ := json.MarshalIndent(large, "", " ")
			if !bytes.Equal(a, b) {
				t.Errorf("large path differs from the whole parse:\n%s", firstDiff(string(a), string(b)))
			}
			// Only messages the multipart reader cannot follow are parsed
			// whole; the rest must have gone the large way.
			if fell := fellBack(hs); fell != irregular[name] {
				t.Errorf("fell back to the whole parse: %v, want %v", fell, irregular[name])
			}
		})
	}
}

// The corpus messages the standard multipart reader does not follow.
var irregular = map[string]bool{
	"malformed":                  true, // a part that never ends
	"malformed-missing-boundary": true, // multipart without its delimiter
	"malformed-nul-bytes":        true, // a NUL in a part header
}

func fellBack(hs *harness) bool {
	for _, l := range hs.logs.all() {
		if strings.Contains(l, "large message parsed whole") {
			return true
		}
	}
	return false
}

// largeMessage builds a message of text, HTML, a binary attachment of n
// bytes in base64 and a CSV attachment in quoted-printable.
func largeMessage(n int) (raw, bin, csv []byte) {
	rng := rand.New(rand.NewChaCha8([32]byte{7}))
	bin = make([]byte, n)
	for i := range bin {
		bin[i] = byte(rng.Uint32())
	}
	copy(bin, "%PDF-1.7\n")
	var c bytes.Buffer
	for i := 0; c.Len() < n/8; i++ {
		fmt.Fprintf(&c, "%d;Grüße;%d\r\n", i, i*i)
	}
	csv = c.Bytes()
	var b bytes.Buffer
	b.WriteString("From: Scanner <scan@example.com>\r\nTo: ops@example.com\r\nSubject: big scan\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\npreamble\r\n" +
		"--outer\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n" +
		"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour scan is attached.\r\n" +
		"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Your scan is attached.</p>\r\n--alt--\r\n" +
		"--outer\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\nContent-Disposition: attachment; filename=\"scan.pdf\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(bin)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--outer\r\nContent-Type: text/csv; charset=utf-8; name=\"rows.csv\"\r\n" +
		"Content-Disposition: attachment; filename=\"rows.csv\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	w := quotedprintable.NewWriter(&b)
	w.Write(csv)
	w.Close()
	b.WriteString("\r\n--outer--\r\nepilogue\r\n")
	return b.Bytes(), bin, csv
}

// storedJob puts raw into store and returns a stage on it (routes
// testRules, recording queues) with the ParseJob that names the message.
func storedJob(tb testing.TB, cfg Config, store blob.Store, raw []byte, log *slog.Logger) (*Handler, postern.MsgID, []byte) {
	tb.Helper()
	table, err := route.New(testRules)
	if err != nil {
		tb.Fatal(err)
	}
	h := New(cfg, store, table, Outbox{Webhook: &recorder{}, Relay: &recorder{}, DSN: &recorder{}}, log)
	id := postern.NewMsgID()
	if err := store.Put(context.Background(), id.RawKey(), bytes.NewReader(raw), nil); err != nil {
		tb.Fatal(err)
	}
	body, err := json.Marshal(postern.ParseJob{V: postern.JobVersion, ID: id, Envelope: postern.Envelope{
		V: postern.EnvelopeVersion, ID: id, Sender: "scan@example.com", Size: int64(len(raw)),
		Recipients: []postern.Recipient{{Addr: "ops@example.com"}},
	}})
	if err != nil {
		tb.Fatal(err)
	}
	return h, id, body
}

// A large message costs the stage a bounded amount of memory, not its size,
// and its attachments come out whole. Not parallel: allocation is measured
// process-wide.
func TestLargeMessageParsedInBoundedMemory(t *testing.T) {
	raw, bin, csv := largeMessage(12 << 20)
	store, err := fsblob.New(t.TempDir(), fsblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logWriter{t: t}
	h, id, body := storedJob(t, Config{}, store, raw, slog.New(slog.NewJSONHandler(logs, nil)))
	ctx := context.Background()

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := h.Handle(ctx, postern.Job{Body: body, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d-byte message: %d bytes allocated in all", len(raw), alloc)
	if alloc > 8<<20 {
		t.Errorf("parsing a %d MiB message allocated %d MiB; want under 8", len(raw)>>20, alloc>>20)
	}

	rc, err := store.Get(ctx, id.ParsedKey())
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := io.ReadAll(rc)
	rc.Close()
	p := decode[postern.Parsed](t, pb)
	if p.Text != "Your scan is attached." || p.HTML != "<p>Your scan is attached.</p>" || len(p.Attachments) != 2 || hasSevere(p.Errors) {
		t.Fatalf("parsed: text %q html %q attachments %+v errors %+v", p.Text, p.HTML, p.Attachments, p.Errors)
	}
	for i, want := range [][]byte{bin, csv} {
		a := p.Attachments[i]
		if a.Key != id.AttachmentKey(i) || a.Size != int64(len(want)) || a.SHA256 != sha(want) {
			t.Errorf("attachment %d = %+v, want %d bytes", i, a, len(want))
			continue
		}
		rc, err := store.Get(ctx, a.Key)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, want) {
			t.Errorf("stored attachment %d differs", i)
		}
	}
	if p.Attachments[0].DetectedType != "application/pdf" || p.Attachments[0].Filename != "scan.pdf" {
		t.Errorf("pdf attachment = %+v", p.Attachments[0])
	}
	if fell := fellBack(&harness{logs: logs}); fell {
		t.Error("a regular message fell back to the whole parse")
	}
}

// A text body larger than the skeleton keeps is cut, and flagged so; an
// attachment is never cut, however large.
func TestLargePathCutsBodiesNotAttachments(t *testing.T) {
	t.Parallel()
	line := "Zeile mit Umlauten: äöü, und etwas mehr Text.\r\n"
	text := strings.Repeat(line, 4000) // ~200 KB
	att := strings.Repeat("attachment text line\r\n", 4000)
	raw := []byte("Subject: long\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text +
		"\r\n--b\r\nContent-Type: text/html\r\n\r\n<pre>" + text + "</pre>" +
		"\r\n--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=log.txt\r\n\r\n" + att +
		"\r\n--b--\r\n")
	cfg := largeCfg()
	cfg.BodyInlineMax = 1 << 20
	cfg.large.bodyMax = 64 << 10
	p := handled(t, newHarnessCfg(t, cfg), raw)
	if !p.TextTruncated || !p.HTMLTruncated {
		t.Errorf("truncated flags: text %v html %v, want both", p.TextTruncated, p.HTMLTruncated)
	}
	if len(p.Text) == 0 || len(p.Text) > 64<<10 || !strings.HasPrefix(strings.ReplaceAll(text, "\r\n", "\n"), strings.ReplaceAll(p.Text, "\r\n", "\n")) {
		t.Errorf("text is %d bytes, not a prefix of the body under the cap", len(p.Text))
	}
	if len(p.Attachments) != 1 || string(p.Attachments[0].Content) != att || p.Attachments[0].Filename != "log.txt" {
		t.Fatalf("attachments = %d; want the whole log.txt", len(p.Attachments))
	}
	// With room for the bodies, nothing is flagged.
	cfg.large.bodyMax = 1 << 20
	if p := handled(t, newHarnessCfg(t, cfg), raw); p.TextTruncated || p.HTMLTruncated || len(p.Text) < len(text)-4000 {
		t.Errorf("uncut: flags %v %v, text %d bytes", p.TextTruncated, p.HTMLTruncated, len(p.Text))
	}
}

// Past the skeleton's budget, every further part is left out: bodies are
// flagged cut and attachments still come out whole.
func TestLargePathSkeletonBudget(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("Subject: many\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
	var atts []string
	for i := range 20 {
		a := fmt.Sprintf("%02d", i) + strings.Repeat("x", 1000)
		atts = append(atts, a)
		fmt.Fprintf(&b, "--b\r\nContent-Type: application/octet-stream; name=f%d\r\n\r\n%s\r\n", i, a)
	}
	text := strings.Repeat("the body goes on\r\n", 100)
	b.WriteString("--b\r\nContent-Type: text/plain\r\n\r\n" + text + "\r\n--b--\r\n")
	cfg := largeCfg()
	cfg.large = largeLimits{skeletonMax: 4000, elideAbove: 2000, bodyMax: 4000, headerMax: 1 << 20}
	p := handled(t, newHarnessCfg(t, cfg), []byte(b.String()))
	if len(p.Attachments) != 20 {
		t.Fatalf("%d attachments", len(p.Attachments))
	}
	for i, a := range p.Attachments {
		if string(a.Content) != atts[i] || a.Size != int64(len(atts[i])) || a.SHA256 != sha([]byte(atts[i])) {
			t.Errorf("attachment %d: %d bytes %q...", i, len(a.Content), a.Content[:min(4, len(a.Content))])
		}
	}
	// Three attachments fit the budget; the body gets what is left.
	if len(p.Text) == 0 || len(p.Text) > 4000-3*1002 || !strings.HasPrefix(text, p.Text) || !p.TextTruncated {
		t.Errorf("text of %d bytes, truncated %v: want a prefix in what the budget left", len(p.Text), p.TextTruncated)
	}
}

// MIME limits hold on the large path as on the whole parse: headers only,
// with a severe error, found while streaming.
func TestLargePathLimits(t *testing.T) {
	t.Parallel()
	for name, raw := range map[string][]byte{"wide": flat(600), "deep": nested(30)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			hs := newHarnessCfg(t, largeCfg())
			p := handled(t, hs, raw)
			whole := handled(t, newHarnessCfg(t, Config{InlineAttachmentMax: testInlineMax}), raw)
			if !slices.ContainsFunc(p.Errors, func(e postern.ParseError) bool { return e.Name == ErrNameLimit && e.Severe }) ||
				len(p.Attachments) != 0 || p.Subject != whole.Subject || len(p.Headers) != len(whole.Headers) {
				t.Errorf("parsed %+v", p)
			}
			if fellBack(hs) {
				t.Error("fell back to the whole parse")
			}
		})
	}
}

// A store that fails while an attachment is streamed to it fails the job
// for a retry, not for good.
func TestLargePathStoreFailureIsTemporary(t *testing.T) {
	t.Parallel()
	hs := newHarnessCfg(t, largeCfg())
	hs.store.Err = func(op, key string) error {
		if op == "put" && strings.Contains(key, "/att/") {
			return errors.New("disk gone")
		}
		return nil
	}
	_, _, body := hs.submit(t, buildMessage(t).raw, "ops@example.com")
	err := hs.h.Handle(context.Background(), postern.Job{Body: body, Attempt: 1})
	if err == nil || postern.IsPermanent(err) || !strings.Contains(err.Error(), "disk gone") {
		t.Fatalf("Handle = %v, want a temporary store error", err)
	}
}

// Base64 in a left-out part decodes as leniently as enmime's: stray bytes
// are reported and skipped; bytes that cannot decode end the part, with
// what came before kept and a severe error.
func TestLargePathBase64(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("0123456789abcdef"), 100)
	enc := base64.StdEncoding.EncodeToString(data)
	msg := func(body string) []byte {
		return []byte("Subject: b64\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
			"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body + "\r\n--b--\r\n")
	}
	stray := enc[:40] + "!" + enc[40:80] + "\r\n  *" + enc[80:]
	p := handled(t, newHarnessCfg(t, largeCfg()), msg(stray))
	whole := handled(t, newHarnessCfg(t, Config{InlineAttachmentMax: testInlineMax}), msg(stray))
	if !bytes.Equal(p.Attachments[0].Content, data) || !reflect.DeepEqual(p.Errors, whole.Errors) || len(p.Errors) != 2 {
		t.Errorf("stray bytes: %d bytes, errors %+v, whole parse's %+v", len(p.Attachments[0].Content), p.Errors, whole.Errors)
	}
	// One base64 byte too many cannot decode.
	data = data[:1596]
	p = handled(t, newHarnessCfg(t, largeCfg()), msg(base64.StdEncoding.EncodeToString(data)+"Q"))
	a := p.Attachments[0]
	if !bytes.HasPrefix(a.Content, data[:1500]) || a.Size != int64(len(a.Content)) || a.SHA256 != sha(a.Content) ||
		!slices.ContainsFunc(p.Errors, func(e postern.ParseError) bool { return e.Name == ErrNamePartial && e.Severe }) {
		t.Errorf("corrupt: %d bytes, errors %+v", len(a.Content), p.Errors)
	}
}

// FuzzLargePath runs arbitrary bytes down both paths. The large one must
// never fail or panic, must describe each attachment truly (size and hash of
// its bytes), and on a message both paths read without severe errors must
// find the same bodies and attachments. On both, every leaf part must reach
// the payload or an error must say why not (checkLeavesReached).
func FuzzLargePath(f *testing.F) {
	for _, raw := range testMessages(&testing.T{}) {
		if len(raw) <= fuzzSeedMaxLen {
			f.Add(raw)
		}
	}
	for _, b := range fuzzLargePathSeeds() {
		f.Add(b)
	}
	for _, c := range extraCases() {
		f.Add([]byte(c.raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		lc := largeCfg()
		lc.MaxParts, lc.MaxDepth = 50, 8
		hs := newHarnessCfg(t, lc)
		hs.logs.quiet = true
		large := handled(t, hs, raw)
		for i, a := range large.Attachments {
			if a.Size != int64(len(a.Content)) || a.SHA256 != sha(a.Content) {
				t.Fatalf("attachment %d: size %d sha %s for %d bytes", i, a.Size, a.SHA256, len(a.Content))
			}
		}
		wh := newHarnessCfg(t, Config{InlineAttachmentMax: testInlineMax, MaxParts: 50, MaxDepth: 8})
		wh.logs.quiet = true
		whole := handled(t, wh, raw)
		for _, p := range []*postern.Parsed{large, whole} {
			if !p.TextTruncated && !p.HTMLTruncated { // the check needs them whole
				checkLeavesReached(t, raw, p)
			}
		}
		if fellBack(hs) || hasSevere(large.Errors) || hasSevere(whole.Errors) {
			return
		}
		if large.Text != whole.Text || large.HTML != whole.HTML || len(large.Attachments) != len(whole.Attachments) {
			t.Fatalf("bodies or attachment count differ:\nlarge %q %q %d\nwhole %q %q %d",
				large.Text, large.HTML, len(large.Attachments), whole.Text, whole.HTML, len(whole.Attachments))
		}
		for i := range large.Attachments {
			// enmime converts text attachments it holds to UTF-8; the large
			// path keeps a left-out part's bytes as sent.
			if strings.HasPrefix(large.Attachments[i].ContentType, "text/") {
				continue
			}
			if large.Attachments[i].SHA256 != whole.Attachments[i].SHA256 {
				t.Fatalf("attachment %d differs: %d bytes vs %d", i, large.Attachments[i].Size, whole.Attachments[i].Size)
			}
		}
	})
}

// fuzzLargePathSeeds are FuzzLargePath's seeds besides the test messages.
func fuzzLargePathSeeds() [][]byte {
	return [][]byte{
		flat(12),
		[]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--x--\r\n"),
	}
}

// A header line longer than the reader's buffer does not end the header
// where a piece of it happens to end.
func TestLargePathLongHeaderLine(t *testing.T) {
	t.Parallel()
	// A line of exactly one buffer before its CRLF: the CRLF comes alone.
	long := "X-Long: " + strings.Repeat("a", 32<<10-len("X-Long: ")) + "\r\n"
	raw := []byte("Subject: long\r\n" + long + "X-After: 1\r\nContent-Type: text/plain\r\n\r\nbody\r\n")
	whole := handled(t, newHarnessCfg(t, Config{InlineAttachmentMax: testInlineMax}), raw)
	large := handled(t, newHarnessCfg(t, largeCfg()), raw)
	if len(large.Headers) != 4 || large.Text != "body\r\n" || !reflect.DeepEqual(large, whole) {
		t.Errorf("large path: %d headers, text %q; whole parse: %d headers, text %q", len(large.Headers), large.Text, len(whole.Headers), whole.Text)
	}
}

// The skeleton's buffer is reused by the next parse: nothing in a parsed
// form may point into it. Each message's parsed form is the same after the
// stage has parsed every other message with the same buffers.
func TestReusedBuffersDoNotReachResults(t *testing.T) {
	ctx := context.Background()
	msgs := testMessages(t)
	msgs["plain"] = plainVariants()["ascii/long"]
	msgs["plain-1MiB"] = benchPlain1MiB()
	store := newMemStore()
	type done struct {
		p    *postern.Parsed
		json []byte
	}
	var results []done
	for _, raw := range msgs {
		h, id, _ := storedJob(t, largeCfg(), store, raw, slog.New(slog.DiscardHandler))
		p, err := h.parse(ctx, id, int64(len(raw)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(p)
		results = append(results, done{p, b})
	}
	for i, r := range results {
		if b, _ := json.Marshal(r.p); !bytes.Equal(b, r.json) {
			t.Fatalf("parsed form %d changed once later parses reused the buffers:\n%s", i, firstDiff(string(r.json), string(b)))
		}
	}
}

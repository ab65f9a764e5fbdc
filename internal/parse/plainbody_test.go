package parse

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// plainVariants are single-part messages around the plain-body shortcut's
// edges: each header that decides whether it applies, and bodies of every
// shape, so both those it takes and those it leaves are compared.
func plainVariants() map[string][]byte {
	headers := map[string]string{
		"none":           "",
		"ascii":          "Content-Type: text/plain; charset=us-ascii\r\n",
		"utf8":           "Content-Type: text/plain; charset=UTF-8\r\n",
		"latin1-flowed":  "Content-Type: text/plain; charset=\"ISO-8859-1\"; format=flowed; delsp=yes\r\n",
		"no-charset":     "Content-Type: text/plain\r\n",
		"shift-jis":      "Content-Type: text/plain; charset=shift_jis\r\n",
		"bad-charset":    "Content-Type: text/plain; charset=x-unknown\r\n",
		"named":          "Content-Type: text/plain; charset=us-ascii; name=report.txt\r\n",
		"html":           "Content-Type: text/html; charset=us-ascii\r\n",
		"csv":            "Content-Type: text/csv; charset=us-ascii\r\n",
		"octets":         "Content-Type: application/octet-stream\r\n",
		"untyped":        "Content-Type: report\r\n",
		"two-types":      "Content-Type: text/plain; charset=us-ascii\r\nContent-Type: text/html\r\n",
		"boundary-param": "Content-Type: text/plain; charset=us-ascii; boundary=x\r\n",
		"7bit":           "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7BIT\r\n",
		"8bit":           "Content-Transfer-Encoding: 8bit\r\n",
		"binary":         "Content-Transfer-Encoding: binary\r\n",
		"base64":         "Content-Transfer-Encoding: base64\r\n",
		"qp":             "Content-Transfer-Encoding: quoted-printable\r\n",
		"uuencode":       "Content-Transfer-Encoding: x-uuencode\r\n",
		"two-cte":        "Content-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: 8bit\r\n",
		"inline":         "Content-Disposition: inline\r\n",
		"attachment":     "Content-Disposition: attachment; filename=log.txt\r\n",
		"folded":         "Content-Type: text/plain;\r\n charset=us-ascii\r\n",
		"not-indented":   "Content-Type: text/plain; charset=us-ascii\r\nwrapped line without colon\r\n",
		"colon-first":    ":odd\r\nContent-Type: text/plain; charset=us-ascii\r\n",
		"space-colon":    "Content-Type : text/plain; charset=us-ascii\r\n",
		"bad-name":       "Cont(ent-Type: text/html\r\n",
		"multipart-word": "X-Note: not multipart at all\r\n",
		"multipart":      "Content-Type: multipart/mixed; boundary=b\r\n",
		"mime-version":   "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n",
		"bare-lf":        "Content-Type: text/plain; charset=us-ascii\n",
	}
	bodies := map[string]string{
		"empty":      "",
		"line":       "hello\r\n",
		"no-eol":     "hello",
		"bare-lf":    "one\ntwo\n",
		"cr-only":    "one\rtwo\r",
		"blank-top":  "\r\n\r\nafter blank lines\r\n",
		"nul":        "a\x00b\r\n",
		"delimiters": "--b\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--b--\r\n",
		"equals":     "=3D=\r\nbase64 and quoted-printable\r\n",
		"8bit":       "Gr\xc3\xbc\xc3\x9fe\r\n",
		"latin1":     "Gr\xfc\xdfe\r\n",
		"long":       strings.Repeat("00000042 invoice 2026-12 amount 1234.56 EUR\r\n", 3000),
		"html-ish":   "<html><body>not html</body></html>\r\n",
	}
	out := map[string][]byte{}
	for hn, h := range headers {
		for bn, b := range bodies {
			out[hn+"/"+bn] = []byte("From: erp@example.com\r\nSubject: report\r\n" + h + "\r\n" + b)
		}
	}
	out["no-blank-line"] = []byte("From: erp@example.com\r\nSubject: report\r\n")
	out["only-blank"] = []byte("\r\nbody without a header\r\n")
	return out
}

// The plain-body shortcut changes nothing: every corpus message and every
// variant parses to the same result with it and without it, and it takes a
// good share of the variants (so the comparison is not vacuous).
func TestPlainBodyChangesNothing(t *testing.T) {
	t.Parallel()
	msgs := plainVariants()
	for name, raw := range testMessages(t) {
		msgs["corpus/"+name] = raw
	}
	msgs["bench/text-1MiB"] = benchPlain1MiB()
	msgs["bench/pdf-1MiB"] = benchPDF1MiB()
	taken := 0
	for name, raw := range msgs {
		if _, _, ok := plainBody(raw, parseMediaTypeASCII); ok && passThroughASCII(raw) {
			taken++
		}
		got, want := Parse(raw, Config{}), Parse(raw, Config{enmimeEveryBody: true})
		if !reflect.DeepEqual(got, want) {
			g, _ := json.MarshalIndent(got, "", " ")
			w, _ := json.MarshalIndent(want, "", " ")
			t.Errorf("%s: parsed differently with the plain-body shortcut:\n%s", name, firstDiff(string(w), string(g)))
		}
	}
	if taken < 100 {
		t.Errorf("the shortcut took %d of %d messages; the variants are meant to exercise it", taken, len(msgs))
	}
	t.Logf("the shortcut took %d of %d messages", taken, len(msgs))
}

// The same through the stage's large-message path, whose skeleton carries
// a marker header and may cut the body.
func TestPlainBodyLargePathChangesNothing(t *testing.T) {
	t.Parallel()
	for name, raw := range map[string][]byte{
		"short": plainVariants()["ascii/line"],
		"long":  plainVariants()["ascii/long"],
		"1MiB":  benchPlain1MiB(),
	} {
		cfg := largeCfg()
		cfg.large.bodyMax = 64 << 10 // the long ones are cut
		got := handled(t, newHarnessCfg(t, cfg), raw)
		cfg.enmimeEveryBody = true
		want := handled(t, newHarnessCfg(t, cfg), raw)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the large path parsed differently with the plain-body shortcut", name)
		}
	}
}

func FuzzPlainBody(f *testing.F) {
	for _, raw := range plainVariants() {
		if len(raw) <= fuzzSeedMaxLen {
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, want := Parse(raw, Config{}), Parse(raw, Config{enmimeEveryBody: true})
		if !reflect.DeepEqual(got, want) {
			g, _ := json.MarshalIndent(got, "", " ")
			w, _ := json.MarshalIndent(want, "", " ")
			t.Fatalf("parsed differently with the plain-body shortcut:\n%s", firstDiff(string(w), string(g)))
		}
	})
}

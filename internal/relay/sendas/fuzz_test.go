package sendas

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/postern/postern/internal/crlf"
	"github.com/postern/postern/internal/mailheader"
	"github.com/postern/postern/internal/relay"
)

// FuzzRewriteFrom: the header comes from the network (the device), so
// whatever it holds, the next hop must see exactly one From, the mailbox,
// every other field as it was, and the body byte for byte.
func FuzzRewriteFrom(f *testing.F) {
	for _, s := range []string{
		received + "From: Scanner 3F <scanner@printer.local>\r\nSubject: scan\r\n\r\nbody\r\n",
		"From: \"a\r\n b\"\r\n\t<x@y>\nReply-To: r@y\n\nbody",
		"Subject: x\rFrom: evil@x\r\n\r\n",
		"From: a@b\r\nBad Name: x\r\n more\r\nFrom: c@d\r\n\r\n",
		"\r\nFrom: not@header\r\n",
		"From: =?iso-8859-1?q?Dr=FCcker?= <d@p>\r\r\n\r\r\nbody",
		"no colon\nFrom:\n\n",
		"From: x@y",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	const mailbox = "mailbox@contoso.com"
	f.Fuzz(func(t *testing.T, raw []byte, header bool) {
		if len(raw) > 1<<16 {
			return
		}
		c := Config{SendAs: mailbox, RewriteFrom: true}
		if header {
			c.OriginalFrom = OriginalHeader
		}
		var got relay.Message
		var sent []byte
		next := transportFunc(func(_ context.Context, m *relay.Message) (*relay.Result, error) {
			got = *m
			b, err := io.ReadAll(m.Body)
			sent = b
			return relay.Uniform(m, "", relay.Reply{Status: "2.0.0"}), err
		})
		m := &relay.Message{From: "d@p", To: []relay.Rcpt{{Addr: "r@x"}}, Body: bytes.NewReader(raw), Size: int64(len(raw))}
		if _, err := Wrap(next, c).Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		if len(raw) > 0 && got.Size != int64(len(sent)) {
			t.Fatalf("Size %d for %d bytes", got.Size, len(sent))
		}
		hIn, _, err := readHeader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		hOut, _, _ := readHeader(bytes.NewReader(sent))
		if !bytes.Equal(sent[len(hOut):], raw[len(hIn):]) {
			t.Fatalf("body changed:\n%q\n%q", raw[len(hIn):], sent[len(hOut):])
		}

		in, out := wireFields(t, raw), wireFields(t, sent)
		var froms []string
		for _, fl := range out {
			if strings.EqualFold(fl.Name, "From") {
				froms = append(froms, fl.Value)
			}
		}
		if len(froms) != 1 {
			t.Fatalf("%d From fields sent: %q", len(froms), froms)
		}
		if a, err := addressParser.Parse(froms[0]); err != nil || a.Address != mailbox {
			t.Fatalf("From %q: %v", froms[0], err)
		}
		others := func(fs []mailheader.Field, added ...string) []mailheader.Field {
			var o []mailheader.Field
			for _, fl := range fs {
				skip := strings.EqualFold(fl.Name, "From")
				for _, n := range added {
					skip = skip || strings.EqualFold(fl.Name, n)
				}
				if !skip {
					o = append(o, fl)
				}
			}
			return o
		}
		added := "Reply-To"
		if header {
			added = "X-Original-From"
		}
		a, b := others(in, added), others(out, added)
		if len(a) != len(b) {
			t.Fatalf("fields other than From changed:\n%q\n%q", a, b)
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("field %d changed: %q -> %q", i, a[i], b[i])
			}
		}
	})
}

// wireFields is the header as the next hop reads it: CRLF line ends, then
// mailheader's fields.
func wireFields(t *testing.T, raw []byte) []mailheader.Field {
	b, err := io.ReadAll(crlf.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := mailheader.Block(b)
	return mailheader.Fields(block)
}

package parse

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
)

// With the default limits, a 1 MiB message gives what the whole parse
// gives: a scan's PDF through the large path, and a message with a large
// latin-1 text attachment whole, so the attachment is still converted to
// UTF-8 as it was when the large path began at 4 MiB.
func TestDefaultLargePathKeepsTheWholeParseResult(t *testing.T) {
	t.Parallel()
	csv := bytes.Repeat([]byte("Gr\xfc\xdfe;M\xfcller;1234,56\r\n"), 300<<10/24) // windows-1252
	withCSV := append([]byte("Subject: csv\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"+
		"--b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nSee the export.\r\n"+
		"--b\r\nContent-Type: text/csv; charset=windows-1252\r\nContent-Transfer-Encoding: 8bit\r\n"+
		"Content-Disposition: attachment; filename=export.csv\r\n\r\n"), csv...)
	withCSV = append(withCSV, "\r\n--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"+
		"Content-Disposition: attachment; filename=a.pdf\r\n\r\n"+string(b64(bytes.Repeat([]byte("%PDF"), 150<<10)))+"--b--\r\n"...)
	// Both read raw.eml twice: the skeleton pass and then the cut parts
	// (pdf), or the skeleton pass and then the whole message (csv); the
	// whole parse reads it once.
	for name, raw := range map[string][]byte{"pdf": benchPDF1MiB(), "csv": withCSV} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			hs := newHarnessCfg(t, Config{})
			var gets atomic.Int64
			hs.store.Err = func(op, key string) error {
				if op == "get" && strings.HasSuffix(key, "/raw.eml") {
					gets.Add(1)
				}
				return nil
			}
			got := handled(t, hs, raw)
			want := handled(t, newHarnessCfg(t, Config{StreamAbove: 1 << 30}), raw)
			a, _ := json.Marshal(got)
			b, _ := json.Marshal(want)
			if !bytes.Equal(a, b) {
				t.Errorf("differs from the whole parse:\n%s", firstDiff(string(a), string(b)))
			}
			if gets.Load() != 2 {
				t.Errorf("raw.eml read %d times, want 2 (the large path's first pass ran)", gets.Load())
			}
			if logs := strings.Join(hs.logs.all(), "\n"); strings.Contains(logs, "large message parsed whole") {
				t.Error("logged a fallback for a regular message")
			}
		})
	}
}

package parse

import (
	"net/textproto"
	"testing"
	"unicode/utf8"
)

func TestExtParam(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value, param, want string
	}{
		{`attachment; filename*=iso-8859-1'de'Stra%DFe.txt`, "filename", "Straße.txt"},
		{`attachment; FILENAME*=windows-1251''%D1%F7%E5%F2.xls`, "filename", "Счет.xls"},
		{`attachment; filename*=UTF-8''a%20b.txt`, "filename", "a b.txt"},
		{`attachment; filename*0*=koi8-r''%F0%D2; filename*1*=%C9%D7; filename*2=".txt"`, "filename", "Прив.txt"},
		{`attachment; filename*1="b.txt"; filename*0="a-"`, "filename", "a-b.txt"}, // out of order
		{`attachment; filename*0="a"; filename*2="c"`, "filename", "a"},            // a gap ends the name
		{`attachment; filename*=x-unknown''caf%E9`, "filename", "caf\uFFFD"},       // unknown charset: bytes kept, made valid
		{`attachment; filename*=''100%25%zz.txt`, "filename", "100%%zz.txt"},       // a bad escape stays
		{`attachment; filename*=no-quotes%41`, "filename", "no-quotesA"},
		{`attachment; x="a;filename*=UTF-8''evil"; filename*=UTF-8''good`, "filename", "good"},
		{`attachment; filename*0="q\"uote"`, "filename", `q"uote`},
		{`attachment; filename*99999999999999999999="x"`, "filename", ""},
		{`attachment; filename="plain.txt"`, "filename", ""}, // not extended: enmime's job
		{`application/pdf; name*=utf-8''%E2%9C%93.pdf`, "name", "✓.pdf"},
		{`application/pdf; filename*=utf-8''x.pdf`, "name", ""},
		{``, "filename", ""},
	}
	for _, tt := range tests {
		if got := extParam(tt.value, tt.param); got != tt.want {
			t.Errorf("extParam(%q, %q) = %q, want %q", tt.value, tt.param, got, tt.want)
		}
	}
}

func TestFileName2231PrefersDisposition(t *testing.T) {
	t.Parallel()
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", `application/octet-stream; name*=iso-8859-1''type%E9.bin`)
	if got := fileName2231(h); got != "typeé.bin" {
		t.Errorf("from Content-Type: %q", got)
	}
	h.Set("Content-Disposition", `attachment; filename*=iso-8859-1''disp%E9.bin`)
	if got := fileName2231(h); got != "dispé.bin" {
		t.Errorf("from Content-Disposition: %q", got)
	}
}

// FuzzExtParam: any header value gives valid UTF-8, quickly.
func FuzzExtParam(f *testing.F) {
	f.Add(`attachment; filename*0*=UTF-8''%E6%89%AB; filename*1*=%E6%8F%8F; filename*2=".pdf"`)
	f.Add(`attachment; filename*=iso-8859-1'de'Stra%DFe.txt`)
	f.Add(`attachment; x="a;b\"c"; filename*=%`)
	f.Fuzz(func(t *testing.T, v string) {
		for _, param := range []string{"filename", "name"} {
			if got := extParam(v, param); !utf8.ValidString(got) {
				t.Fatalf("extParam(%q) = %q, not UTF-8", v, got)
			}
		}
	})
}

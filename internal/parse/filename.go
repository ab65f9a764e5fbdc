package parse

import (
	"net/textproto"
	"strconv"
	"strings"

	"golang.org/x/text/encoding/htmlindex"
)

// enmime reads file names with Go's mime.ParseMediaType, which decodes RFC
// 2231 extended parameters only in UTF-8 and US-ASCII and drops the rest:
// filename*=iso-8859-1''Stra%DFe.txt, as older mailers send, would come out
// as no name at all. fileName2231 recovers those names from the part's own
// header, in any charset the WHATWG index knows.

// maxParamSegments bounds RFC 2231 continuations (filename*0, *1, ...).
const maxParamSegments = 64

// fileName2231 returns the file name from the RFC 2231 filename parameter of
// Content-Disposition, else the name parameter of Content-Type; "" when
// neither has an extended form.
func fileName2231(h textproto.MIMEHeader) string {
	if name := extParam(h.Get("Content-Disposition"), "filename"); name != "" {
		return name
	}
	return extParam(h.Get("Content-Type"), "name")
}

// segment is one piece of a continued parameter.
type segment struct {
	value   string
	encoded bool // a "*" piece: percent-encoded, charset-tagged when first
}

// extParam decodes the extended (RFC 2231) form of param in a header value:
// param*=charset'lang'%XX..., or its continuations param*0*=, param*1=, ...
// joined in order until the first missing index.
func extParam(value, param string) string {
	var single *segment
	segs := map[int]segment{}
	for _, p := range splitParams(value) {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = unquote(strings.TrimSpace(v))
		rest, ok := strings.CutPrefix(k, param+"*")
		switch {
		case !ok:
		case rest == "":
			single = &segment{value: v, encoded: true}
		default:
			rest, encoded := strings.CutSuffix(rest, "*")
			n, err := strconv.Atoi(rest)
			if err == nil && n >= 0 && n < maxParamSegments {
				segs[n] = segment{value: v, encoded: encoded}
			}
		}
	}
	if single != nil {
		segs = map[int]segment{0: *single}
	}
	var (
		charset string
		buf     []byte
	)
	for i := 0; i < maxParamSegments; i++ {
		s, ok := segs[i]
		if !ok {
			break
		}
		if !s.encoded {
			buf = append(buf, s.value...)
			continue
		}
		v := s.value
		if i == 0 {
			// charset'language'text; a value without the quotes is taken as
			// text in no declared charset.
			if cs, after, ok := strings.Cut(v, "'"); ok {
				if _, text, ok := strings.Cut(after, "'"); ok {
					charset, v = cs, text
				}
			}
		}
		buf = append(buf, percentDecode(v)...)
	}
	return toUTF8(charset, buf)
}

// splitParams returns the ";"-separated parameters after the media type or
// disposition, honouring quoted strings.
func splitParams(v string) []string {
	var out []string
	start, inQuote, escaped := -1, false, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case escaped:
			escaped = false
		case inQuote && c == '\\':
			escaped = true
		case c == '"':
			inQuote = !inQuote
		case c == ';' && !inQuote:
			if start >= 0 {
				out = append(out, v[start:i])
			}
			start = i + 1
		}
	}
	if start >= 0 && start < len(v) {
		out = append(out, v[start:])
	}
	return out
}

// unquote removes the quotes and backslash escapes of a quoted string; any
// other value is returned as it is.
func unquote(v string) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return v
	}
	v = v[1 : len(v)-1]
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// percentDecode decodes %XX escapes; a malformed escape stays as it is.
func percentDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if b, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				out = append(out, byte(b))
				i += 2
				continue
			}
		}
		out = append(out, s[i])
	}
	return out
}

// toUTF8 decodes b from charset; an unknown charset leaves the bytes as
// they are, made valid UTF-8.
func toUTF8(charset string, b []byte) string {
	switch strings.ToLower(charset) {
	case "", "utf-8", "utf8", "us-ascii":
	default:
		if enc, err := htmlindex.Get(charset); err == nil {
			if d, err := enc.NewDecoder().Bytes(b); err == nil {
				b = d
			}
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

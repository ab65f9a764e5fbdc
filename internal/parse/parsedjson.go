package parse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/postern/postern/internal/jsonstr"
	"github.com/postern/postern/internal/postern"
)

// emptyBodies is what json.Marshal writes for a Parsed whose bodies are
// empty. Only keys can look like this: inside a JSON string every quote is
// escaped, and Parsed has one "text" and one "html" key, side by side.
var emptyBodies = []byte(`"text":"","html":""`)

// bufPool holds the large buffers of one parse (the skeleton, the parsed
// JSON), a megabyte or more each for a large message: reused rather than
// allocated and zeroed per message. One that grew past maxPooledBuf is left
// to the collector.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBuf = 8 << 20

func getBuf() *bytes.Buffer { return bufPool.Get().(*bytes.Buffer) }

// putBuf returns b to the pool; nothing may use its bytes afterwards.
func putBuf(b *bytes.Buffer) {
	if b != nil && b.Cap() <= maxPooledBuf {
		b.Reset()
		bufPool.Put(b)
	}
}

// marshalParsed is json.Marshal(p), byte for byte, and where in it the text
// and HTML strings are (see postern.BodySpans). The bodies, up to 1 MiB
// each, are encoded once straight into the result: Marshal would grow its
// buffer by doubling and then copy the whole of it. out is buf's bytes.
func marshalParsed(p *postern.Parsed, buf *bytes.Buffer) (out []byte, text, html [2]int64, err error) {
	t, h := p.Text, p.HTML
	p.Text, p.HTML = "", ""
	skel, err := json.Marshal(p)
	p.Text, p.HTML = t, h
	if err != nil {
		return nil, text, html, err
	}
	i := bytes.Index(skel, emptyBodies)
	if i < 0 || bytes.Index(skel[i+1:], emptyBodies) >= 0 {
		return nil, text, html, fmt.Errorf("the bodies' place is not where Parsed puts it")
	}
	// Room for the bodies as they are and some escapes, so each is
	// encoded straight into buf (jsonstr.Append is json.Marshal's string
	// encoding).
	buf.Grow(len(skel) + len(t) + len(h) + (len(t)+len(h))/16 + 64)
	str := func(s string) [2]int64 {
		start := int64(buf.Len())
		buf.Write(jsonstr.Append(buf.AvailableBuffer(), s))
		return [2]int64{start, int64(buf.Len())}
	}
	buf.Write(skel[:i+len(`"text":`)])
	text = str(t)
	buf.WriteString(`,"html":`)
	html = str(h)
	buf.Write(skel[i+len(emptyBodies):])
	return buf.Bytes(), text, html, nil
}

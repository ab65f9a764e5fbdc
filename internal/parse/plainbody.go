package parse

import (
	"bufio"
	"bytes"
	"strings"

	"github.com/jhillyerd/enmime/v2"
)

// The most common large device message is one text/plain part of 7-bit
// text: a report, a log, a listing. Read through the 7-bit pass-through
// (untyped.go), enmime changes none of its body's bytes (no transfer
// encoding to undo, UTF-8 read as UTF-8) but copies them three times,
// growing each buffer by doubling: about 6 MB allocated and 1.5 ms for a
// 1 MiB body. plainBody recognises such a message from its header, so
// enmime is given the header alone and the body is set as enmime would set
// it. TestPlainBodyChangesNothing and FuzzPlainBody hold the two ways to
// the same result.

// plainParams are the Content-Type parameters a plain body may carry: none
// of them changes how enmime reads it.
var plainParams = map[string]bool{"charset": true, "format": true, "delsp": true}

// plainBody splits raw into its header block (with the empty line that
// ends it) and its body when raw is a single text/plain part that enmime
// would take, byte for byte, as the text body under mediaType (the
// pass-through's): no multipart or boundary anywhere in the header, one
// Content-Type at most, naming text/plain with a charset read as UTF-8 and
// no other parameter that matters, no transfer encoding to undo, and no
// Content-Disposition.
func plainBody(raw []byte, mediaType func(string) (string, map[string]string, []string, error)) (head, body []byte, ok bool) {
	end, start := headerEnd(raw, 0, len(raw))
	if start == end {
		return nil, nil, false // no empty line: enmime reads no body either
	}
	block := raw[:end]
	if containsFold(block, "multipart") || containsFold(block, "boundary") {
		return nil, nil, false
	}
	h, err := enmime.ReadHeader(bufio.NewReader(bytes.NewReader(raw[:start])), discardErrors{})
	if err != nil {
		return nil, nil, false
	}
	cts := h.Values("Content-Type")
	ct := `text/plain; charset="us-ascii"` // enmime's default for a message
	switch {
	case len(cts) > 1:
		return nil, nil, false
	case len(cts) == 1:
		ct = cts[0]
	}
	mtype, params, invalid, err := mediaType(ct)
	if err != nil || mtype != "text/plain" || len(invalid) > 0 || !strings.EqualFold(params["charset"], "utf-8") {
		return nil, nil, false
	}
	for k := range params {
		if !plainParams[k] {
			return nil, nil, false
		}
	}
	if len(h.Values("Content-Disposition")) > 0 || len(h.Values("Content-Transfer-Encoding")) > 1 {
		return nil, nil, false
	}
	switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
	case "", "7bit", "8bit", "binary":
	default:
		return nil, nil, false
	}
	return raw[:start], raw[start:], true
}

// fillPlainBody sets the body plainBody split off as enmime sets a single
// text/plain part's: the root's content and the envelope's text (unless
// !text: the caller names the text in the message instead of copying it).
// It reports false, changing nothing, when enmime did not read the header
// as such a part after all, and the message must be read whole.
func fillPlainBody(env *enmime.Envelope, body []byte, text bool) bool {
	root := env.Root
	if root == nil || root.FirstChild != nil || root.ContentType != "text/plain" || len(root.Content) != 0 ||
		env.Text != "" || env.HTML != "" || len(env.Attachments)+len(env.Inlines)+len(env.OtherParts) > 0 {
		return false
	}
	root.Content = body
	if text {
		env.Text = string(body)
	}
	return true
}

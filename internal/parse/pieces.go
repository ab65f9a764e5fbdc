package parse

import "github.com/jhillyerd/enmime/v2"

// Parts enmime takes for no body: enmime reads Text from the first
// text/plain alternative (or every text/plain outside one) and HTML from the
// first text/html part, and lists only attachment-, inline- and untyped
// parts besides; any other leaf, such as a second alternative or a part
// with a disposition it does not know, has no place in its envelope. The
// stage places every one of them:
//
//   - A text/html part that follows the HTML body in the same
//     multipart/mixed continues it: Apple Mail sends text, an image, more
//     text as a multipart/mixed of HTML, image, HTML, and readers show the
//     pieces one after the other (Exchange builds one HTML body from them,
//     MS-OXCMSG 2.2.3.3.2.2). HTML is the pieces joined with a line end;
//     Text derived from HTML is derived from all of them.
//   - Every other leaf is an attachment (attachments), its bytes as enmime
//     decoded them, with its own type, name and disposition. Alternatives
//     are not joined: they are the same content twice.

// htmlPieces returns the text/html parts that continue the HTML body, in
// order: the siblings after it in a multipart/mixed that enmime would take
// as a body had they come first (leaves, not marked as attachment).
func htmlPieces(root *enmime.Part) []*enmime.Part {
	if root == nil || root.FirstChild == nil {
		return nil // single part: it is the body or an attachment
	}
	body := root.DepthMatchFirst(isHTMLBody)
	if body == nil || body.Parent == nil || body.Parent.ContentType != "multipart/mixed" {
		return nil
	}
	var out []*enmime.Part
	for s := body.NextSibling; s != nil; s = s.NextSibling {
		if s.FirstChild == nil && isHTMLBody(s) {
			out = append(out, s)
		}
	}
	return out
}

// isHTMLBody is enmime's test for the HTML body part.
func isHTMLBody(p *enmime.Part) bool {
	return p.ContentType == "text/html" && p.Disposition != "attachment"
}

// joinHTMLPieces adds the pieces to env.HTML and, when env.Text was derived
// from the HTML (derived) or there is none, derives it again from all of it
// with enmime's own conversion. It returns whether Text is derived now.
func joinHTMLPieces(parser *enmime.Parser, env *enmime.Envelope, pieces []*enmime.Part, derived bool) bool {
	html := env.HTML
	for _, p := range pieces {
		if len(p.Content) == 0 {
			continue
		}
		if html != "" {
			html += "\n"
		}
		html += string(p.Content)
	}
	if html == env.HTML || !derived && env.Text != "" {
		env.HTML = html
		return derived
	}
	env.HTML = html
	// One HTML part, already UTF-8: enmime converts it as it did the first
	// piece.
	doc := enmime.NewPart("text/html")
	doc.Header.Set("Content-Type", "text/html; charset=utf-8")
	doc.Charset, doc.Content = "utf-8", []byte(html)
	if e, err := parser.EnvelopeFromPart(doc); err == nil {
		env.Text = e.Text
	}
	return true
}

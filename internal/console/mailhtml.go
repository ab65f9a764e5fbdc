package console

import (
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// SanitizeMailHTML returns a message's HTML body fit for the console's
// sandboxed frame: no element that runs code, embeds or loads another
// document, submits or redirects (script, iframe, object, form, meta, base,
// link, ...); no event handler attributes; and no URL but data: images, so
// that opening a message fetches nothing remote (a tracking pixel would tell
// the sender the mail was read). Links keep their text and show their
// target as a title, but do not navigate. The frame's CSP (MailCSP) and
// sandbox enforce the same again; this is the first of the two walls.
func SanitizeMailHTML(s string) string {
	doc, err := html.Parse(strings.NewReader(s))
	if err != nil {
		return ""
	}
	clean(doc)
	var b strings.Builder
	if err := html.Render(&b, doc); err != nil {
		return ""
	}
	return b.String()
}

// dropped are the elements removed with their content.
var dropped = map[atom.Atom]bool{
	atom.Script: true, atom.Noscript: true, atom.Iframe: true, atom.Frame: true, atom.Frameset: true,
	atom.Object: true, atom.Embed: true, atom.Applet: true, atom.Form: true, atom.Input: true,
	atom.Button: true, atom.Select: true, atom.Textarea: true, atom.Meta: true, atom.Base: true,
	atom.Link: true, atom.Template: true, atom.Svg: true, atom.Math: true, atom.Audio: true,
	atom.Video: true, atom.Source: true, atom.Track: true, atom.Dialog: true,
}

// urlAttrs are the attributes that hold a URL.
var urlAttrs = map[string]bool{
	"src": true, "href": true, "background": true, "srcset": true, "poster": true, "action": true,
	"formaction": true, "cite": true, "longdesc": true, "lowsrc": true, "dynsrc": true, "data": true,
	"xlink:href": true, "ping": true, "manifest": true, "codebase": true, "usemap": true, "itemtype": true,
}

func clean(n *html.Node) {
	for c := n.FirstChild; c != nil; {
		next := c.NextSibling
		switch {
		case c.Type == html.ElementNode && (dropped[c.DataAtom] || c.DataAtom == 0 && c.Namespace != ""):
			n.RemoveChild(c)
		case c.Type == html.ElementNode && c.DataAtom == atom.Style && loadsURL(textOf(c)):
			n.RemoveChild(c)
		case c.Type == html.CommentNode:
			n.RemoveChild(c) // conditional comments can hold markup some readers run
		default:
			if c.Type == html.ElementNode {
				c.Attr = cleanAttrs(c)
			}
			clean(c)
		}
		c = next
	}
}

func cleanAttrs(n *html.Node) []html.Attribute {
	out := n.Attr[:0]
	var title string
	for _, a := range n.Attr {
		key := strings.ToLower(a.Key)
		if a.Namespace != "" {
			key = a.Namespace + ":" + key
		}
		switch {
		case strings.HasPrefix(key, "on"):
			continue
		case key == "style":
			// CSS can load URLs (url(), @import, image-set); the frame's CSP
			// blocks them, and here they go too.
			if loadsURL(a.Val) {
				continue
			}
		case key == "href" && n.DataAtom == atom.A:
			title = a.Val
			continue
		case key == "src" && n.DataAtom == atom.Img:
			if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Val)), "data:image/") {
				out = append(out, html.Attribute{Key: "alt", Val: "[remote image blocked]"})
				continue
			}
		case urlAttrs[key]:
			continue
		}
		out = append(out, a)
	}
	if title != "" {
		out = append(out, html.Attribute{Key: "title", Val: title})
	}
	return out
}

// loadsURL reports whether CSS may fetch something.
func loadsURL(css string) bool {
	v := strings.ToLower(css)
	for _, s := range []string{"url(", "image-set", "@import", "expression(", "\\"} {
		if strings.Contains(v, s) {
			return true // a backslash escape could spell any of them
		}
	}
	return false
}

func textOf(n *html.Node) string {
	var b strings.Builder
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	}
	return b.String()
}

package console

import (
	"strings"
	"testing"

	"golang.org/x/net/html"
)

func TestSanitizeMailHTML(t *testing.T) {
	t.Parallel()
	in := `<html><head><meta http-equiv="refresh" content="0;url=https://evil.example/"><base href="https://evil.example/">
<link rel="stylesheet" href="https://evil.example/x.css"><style>body{background:url(https://evil.example/bg)}</style>
<style>p { color: red }</style></head>
<body onload="alert(1)"><p style="color:blue">Hello <b>there</b></p>
<img src="https://track.example/pixel.gif" width="1"><img src="data:image/png;base64,iVBORw0KGgo=">
<a href="https://phish.example/login" onclick="x()">click</a><script>alert(2)</script>
<iframe src="https://evil.example/"></iframe><form action="https://evil.example/"><input name="p"></form>
<svg><script>alert(3)</script></svg><div style="background-image:url('https://t.example/b')">bg</div>
<table background="https://t.example/t.png"><tr><td>cell</td></tr></table>
<!--[if mso]><img src="https://t.example/mso.gif"><![endif]-->
<object data="https://evil.example/x.swf"></object><video poster="https://t.example/p.jpg"></video>
</body></html>`
	out := SanitizeMailHTML(in)
	for _, bad := range []string{"evil.example", "track.example", "t.example", "href=", "<script", "onload", "onclick",
		"<iframe", "<form", "<input", "<meta", "<base", "<link", "<svg", "<object", "<video", "background:url", "mso"} {
		if strings.Contains(out, bad) {
			t.Errorf("sanitised HTML still holds %q:\n%s", bad, out)
		}
	}
	for _, good := range []string{"Hello <b>there</b>", `style="color:blue"`, "data:image/png;base64,iVBORw0KGgo=", `<a title="https://phish.example/login">click</a>`,
		"<td>cell</td>", "p { color: red }", "[remote image blocked]"} {
		if !strings.Contains(out, good) {
			t.Errorf("sanitised HTML lost %q:\n%s", good, out)
		}
	}
}

func FuzzSanitizeMailHTML(f *testing.F) {
	f.Add(`<img src="https://x.example/p.gif"><a href="http://y.example">y</a>`)
	f.Add(`<p style="background:u\rl(http://x.example)">x</p>`)
	f.Add(`<svg><a xlink:href="https://x.example/">x</a></svg><math><mi href="https://x.example/">m</mi></math>`)
	f.Fuzz(func(t *testing.T, in string) {
		out := SanitizeMailHTML(in)
		// Whatever goes in, what comes out, read as a browser reads it,
		// has no element that runs or embeds anything and no URL but a
		// data: image.
		doc, err := html.Parse(strings.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		var walk func(n *html.Node)
		walk = func(n *html.Node) {
			if n.Type == html.ElementNode {
				if dropped[n.DataAtom] {
					t.Fatalf("<%s> survives: in %q out %q", n.Data, in, out)
				}
				for _, a := range n.Attr {
					k := strings.ToLower(a.Key)
					if strings.HasPrefix(k, "on") || urlAttrs[k] && !(k == "src" && strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Val)), "data:image/")) ||
						k == "style" && loadsURL(a.Val) {
						t.Fatalf("attribute %s=%q survives: in %q out %q", a.Key, a.Val, in, out)
					}
				}
			}
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				walk(c)
			}
		}
		walk(doc)
	})
}

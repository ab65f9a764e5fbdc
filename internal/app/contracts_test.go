package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/apispec"
)

// route is one pattern the admin mux registers, read from the source.
type route struct {
	method string // "" for a pattern without one (every method)
	path   string // as OpenAPI writes it: {name} for every wildcard
	where  string // file:line of the registration
}

var wildcard = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}`)

// goPackage is one directory's non-test files, parsed, and its constants.
type goPackage struct {
	dir    string // relative to the repository root, e.g. internal/app
	files  []*ast.File
	consts map[string]ast.Expr
}

func parsePackage(t *testing.T, fset *token.FileSet, fsDir, repoDir string) *goPackage {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(fsDir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	p := &goPackage{dir: repoDir, consts: map[string]ast.Expr{}}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		p.files = append(p.files, f)
		for _, d := range f.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
				for _, s := range g.Specs {
					vs := s.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							p.consts[n.Name] = vs.Values[i]
						}
					}
				}
			}
		}
	}
	return p
}

// eval is the value of a constant string expression: literals, the
// package's constants, and + of them.
func (p *goPackage) eval(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind == token.STRING {
			s, err := strconv.Unquote(e.Value)
			return s, err == nil
		}
	case *ast.BinaryExpr:
		if e.Op == token.ADD {
			x, ok1 := p.eval(e.X)
			y, ok2 := p.eval(e.Y)
			return x + y, ok1 && ok2
		}
	case *ast.ParenExpr:
		return p.eval(e.X)
	case *ast.Ident:
		if v, ok := p.consts[e.Name]; ok {
			return p.eval(v)
		}
	}
	return "", false
}

// isMux reports whether e names a mux variable (mux, adminMux, ...).
func isMux(e ast.Expr) bool {
	id, ok := e.(*ast.Ident)
	return ok && strings.Contains(strings.ToLower(id.Name), "mux")
}

// registrations adds to out the Handle and HandleFunc calls in n whose
// receiver on(sel.X) accepts; a pattern that is not a constant string is
// an error, so a route cannot slip past the comparison with the spec.
func (p *goPackage) registrations(t *testing.T, fset *token.FileSet, n ast.Node, on func(ast.Expr) bool, out *[]route) {
	t.Helper()
	ast.Inspect(n, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) != 2 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") || !on(sel.X) {
			return true
		}
		pos := fset.Position(call.Pos())
		where := fmt.Sprintf("%s/%s:%d", p.dir, filepath.Base(pos.Filename), pos.Line)
		pattern, ok := p.eval(call.Args[0])
		if !ok {
			if isMux(sel.X) {
				t.Errorf("%s: the route pattern is not a constant string, so this test cannot compare it with %s; write the pattern as a string constant", where, apispec.OpenAPIFile)
			}
			return true
		}
		method, rest, hasMethod := strings.Cut(pattern, " ")
		if !hasMethod {
			method, rest = "", pattern
		}
		rest = strings.TrimLeft(rest, " \t")
		i := strings.Index(rest, "/")
		if i < 0 {
			t.Errorf("%s: pattern %q has no path", where, pattern)
			return true
		}
		path := strings.ReplaceAll(rest[i:], "{$}", "")
		if path == "" {
			path = "/"
		}
		path = wildcard.ReplaceAllString(path, "{$1}")
		*out = append(*out, route{method: method, path: path, where: where})
		return true
	})
}

// adminRoutes reads the routes of the admin listener from the source:
// every mux.Handle and mux.HandleFunc call in this package's non-test
// files (the admin mux is the only one the package has; admin.go and the
// admin_*.go mount files register on it), and, where this package hands
// the mux to a function elsewhere (a.console.Mount(mux)), the calls in
// that function on its *http.ServeMux parameter, found by name among the
// other internal packages.
func adminRoutes(t *testing.T) []route {
	t.Helper()
	fset := token.NewFileSet()
	app := parsePackage(t, fset, ".", "internal/app")
	var out []route
	handoffs := map[string]string{} // function name -> where the mux is passed to it
	defined := map[string]bool{}
	for _, f := range app.files {
		app.registrations(t, fset, f, func(ast.Expr) bool { return true }, &out)
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok {
				defined[fd.Name.Name] = true
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || !slices.ContainsFunc(call.Args, isMux) {
				return true
			}
			var name string
			switch fn := call.Fun.(type) {
			case *ast.SelectorExpr:
				name = fn.Sel.Name
			case *ast.Ident:
				name = fn.Name
			}
			if name != "" && name != "Handle" && name != "HandleFunc" {
				pos := fset.Position(call.Pos())
				handoffs[name] = fmt.Sprintf("internal/app/%s:%d", filepath.Base(pos.Filename), pos.Line)
			}
			return true
		})
	}
	for name := range handoffs {
		if defined[name] {
			delete(handoffs, name) // in this package: its calls are read above
		}
	}
	if len(handoffs) == 0 {
		return out
	}
	dirs, err := filepath.Glob(filepath.Join("..", "*"))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || filepath.Base(dir) == "app" {
			continue
		}
		p := parsePackage(t, fset, dir, "internal/"+filepath.Base(dir))
		for _, f := range p.files {
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || handoffs[fd.Name.Name] == "" || fd.Body == nil {
					continue
				}
				for _, field := range fd.Type.Params.List {
					star, ok := field.Type.(*ast.StarExpr)
					if !ok {
						continue
					}
					if sel, ok := star.X.(*ast.SelectorExpr); !ok || sel.Sel.Name != "ServeMux" {
						continue
					}
					for _, n := range field.Names {
						param := n.Name
						found[fd.Name.Name] = true
						p.registrations(t, fset, fd.Body, func(x ast.Expr) bool {
							id, ok := x.(*ast.Ident)
							return ok && id.Name == param
						}, &out)
					}
				}
			}
		}
	}
	for name, where := range handoffs {
		if !found[name] {
			t.Errorf("%s passes the admin mux to %s, and no function %s with a *http.ServeMux parameter is in internal/: this test cannot read the routes it registers", where, name, name)
		}
	}
	return out
}

// Every route the admin mux registers is in the OpenAPI document, and
// every operation the document describes is registered: a handler added
// without its contract (or a contract left behind by a removed handler)
// fails here, naming the method, path, file and line.
func TestAdminRoutesInSpec(t *testing.T) {
	t.Parallel()
	routes := adminRoutes(t)
	if len(routes) < 8 {
		t.Fatalf("found %d routes in the source, fewer than admin.go alone registers: the reader is broken", len(routes))
	}
	ops, err := apispec.Operations()
	if err != nil {
		t.Fatal(err)
	}
	inSpec := map[string]bool{}
	specPaths := map[string]bool{}
	for _, op := range ops {
		inSpec[op] = true
		_, p, _ := strings.Cut(op, " ")
		specPaths[p] = true
	}
	registered := map[string]bool{}
	for _, r := range routes {
		if r.method == "" {
			registered["* "+r.path] = true
			if !specPaths[r.path] {
				t.Errorf("%s (every method) is registered at %s but %s does not describe the path: add it there", r.path, r.where, apispec.OpenAPIFile)
			}
			continue
		}
		registered[r.method+" "+r.path] = true
		if !inSpec[r.method+" "+r.path] {
			t.Errorf("%s %s is registered at %s but %s does not describe it: add the path and method there, with its parameters, request body, responses and the gate's 401, 403 and 421 (415 for anything but GET)", r.method, r.path, r.where, apispec.OpenAPIFile)
		}
	}
	for _, op := range ops {
		_, p, _ := strings.Cut(op, " ")
		if !registered[op] && !registered["* "+p] {
			t.Errorf("%s describes %s, which no mux.Handle or mux.HandleFunc on the admin mux registers (internal/app, and the functions it hands the mux to): remove it from the document or register it", apispec.OpenAPIFile, op)
		}
	}
}

// adminCall is one request to the admin listener whose answer is checked
// against the OpenAPI document's operation specPath.
type adminCall struct {
	method, specPath, path string
	header                 map[string]string // added; Authorization is the admin token unless set here
	body                   string
}

func (c adminCall) do(t *testing.T, addr string) (int, http.Header, []byte) {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, "http://"+addr+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	for k, v := range c.header {
		if k == "Host" {
			req.Host = v
			continue
		}
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := apispec.ValidateResponse(c.method, c.specPath, resp.StatusCode, resp.Header, b); err != nil {
		t.Errorf("%s %s: %v\nbody: %.300s", c.method, c.path, err, b)
	}
	return resp.StatusCode, resp.Header, b
}

// Every GET under /v1 the document describes, called on a running gateway
// with a message in it, answers as the document says: the status is one it
// lists, the Content-Type one it declares, a JSON body matches the schema.
// So do the error answers of each operation and of the gate, and the
// health, metrics and POST operations.
func TestAdminResponsesMatchSpec(t *testing.T) {
	t.Parallel()
	h, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	cfg.Admin.PProf = true
	a := boot(t, cfg)
	addr := a.AdminAddr().String()
	reply, err := send(t, a.SMTPAddrs()[0].String(), "scanner@lan.test", []string{"inbox@app.test"}, []byte("From: scanner@lan.test\r\nSubject: contract\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(reply, "OK ")
	h.wait(t, 1, 20*time.Second)

	// Values for the path parameters of the document's GET operations; a
	// new parameter needs one here.
	samples := map[string]string{"id": id, "name": apispec.SchemaNames()[0], "queue": "webhook", "n": "0"}
	ops, err := apispec.Operations()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				In       string
				Required bool
			}
		}
	}
	if err := json.Unmarshal(apispec.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		method, p, _ := strings.Cut(op, " ")
		if method != "GET" || !strings.HasPrefix(p, "/v1/") {
			continue
		}
		// An operation with a required query parameter (a signed link's
		// sig, say) cannot be called from the table: any answer the
		// document lists for it will do.
		want200 := true
		for _, prm := range doc.Paths[p]["get"].Parameters {
			if prm.In == "query" && prm.Required {
				want200 = false
			}
		}
		path := wildcard.ReplaceAllStringFunc(p, func(w string) string {
			name := strings.Trim(w, "{}")
			v, ok := samples[name]
			if !ok {
				t.Errorf("%s: no sample value for {%s}: add one to samples in contracts_test.go", op, name)
			}
			return v
		})
		status, _, _ := adminCall{method: "GET", specPath: p, path: path}.do(t, addr)
		if want200 && status != http.StatusOK {
			t.Errorf("%s %s: %d, want 200", method, path, status)
		}
	}

	unknownID := "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	_, port, _ := strings.Cut(addr, ":")
	for _, c := range []struct {
		adminCall
		want int
	}{
		{adminCall{method: "GET", specPath: "/healthz", path: "/healthz", header: map[string]string{"Authorization": ""}}, 200},
		{adminCall{method: "GET", specPath: "/metrics", path: "/metrics"}, 200},
		{adminCall{method: "GET", specPath: "/v1/trace/{id}", path: "/v1/trace/not-an-id"}, 400},
		{adminCall{method: "GET", specPath: "/v1/trace/{id}", path: "/v1/trace/" + unknownID}, 404},
		{adminCall{method: "GET", specPath: "/v1/schemas/{name}", path: "/v1/schemas/email.received.v0.json"}, 404},
		{adminCall{method: "GET", specPath: "/v1/devices", path: "/v1/devices", header: map[string]string{"Authorization": ""}}, 401},
		{adminCall{method: "GET", specPath: "/v1/devices", path: "/v1/devices", header: map[string]string{"Authorization": "Bearer wrong"}}, 401},
		{adminCall{method: "GET", specPath: "/v1/openapi.json", path: "/v1/openapi.json", header: map[string]string{"Host": "rebind.example:" + port}}, 421},
		{adminCall{method: "GET", specPath: "/v1/schemas/{name}", path: "/v1/schemas/email.failed.v1.json", header: map[string]string{"Origin": "https://evil.example"}}, 403},
		{adminCall{method: "GET", specPath: "/metrics", path: "/metrics", header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, 403},
		{adminCall{method: "POST", specPath: "/v1/replay/{id}", path: "/v1/replay/" + id, header: map[string]string{"Content-Type": "application/json"}, body: `{"route": "app"}`}, 200},
		{adminCall{method: "POST", specPath: "/v1/replay/{id}", path: "/v1/replay/" + id, header: map[string]string{"Content-Type": "application/json"}, body: `{"route": "nope"}`}, 400},
		{adminCall{method: "POST", specPath: "/v1/replay/{id}", path: "/v1/replay/" + id, header: map[string]string{"Content-Type": "application/json"}, body: `{"route": "files"}`}, 409},
		{adminCall{method: "POST", specPath: "/v1/replay/{id}", path: "/v1/replay/" + unknownID, header: map[string]string{"Content-Type": "application/json"}, body: `{}`}, 404},
		{adminCall{method: "POST", specPath: "/v1/replay/{id}", path: "/v1/replay/" + id, body: `{}`}, 415},
		{adminCall{method: "POST", specPath: "/v1/redrive/{queue}", path: "/v1/redrive/webhook", header: map[string]string{"Content-Type": "application/json"}, body: `{}`}, 200},
		{adminCall{method: "POST", specPath: "/v1/redrive/{queue}", path: "/v1/redrive/webhook", header: map[string]string{"Content-Type": "application/json"}, body: `{"all": true}`}, 400},
		{adminCall{method: "POST", specPath: "/v1/redrive/{queue}", path: "/v1/redrive/nope", header: map[string]string{"Content-Type": "application/json"}, body: `{}`}, 422},
		{adminCall{method: "GET", specPath: "/", path: "/", header: map[string]string{"Authorization": ""}}, 200},
		{adminCall{method: "GET", specPath: "/console/{file}", path: "/console/app.js", header: map[string]string{"Authorization": ""}}, 200},
		{adminCall{method: "GET", specPath: "/console/{file}", path: "/console/app.css", header: map[string]string{"Authorization": ""}}, 200},
		{adminCall{method: "GET", specPath: "/console/{file}", path: "/console/secret.txt", header: map[string]string{"Authorization": ""}}, 401},
		{adminCall{method: "GET", specPath: "/console/{file}", path: "/console/secret.txt"}, 404},
		{adminCall{method: "GET", specPath: "/", path: "/", header: map[string]string{"Origin": "https://evil.example"}}, 403},
		{adminCall{method: "GET", specPath: "/debug/pprof/", path: "/debug/pprof/"}, 200},
		{adminCall{method: "GET", specPath: "/debug/pprof/cmdline", path: "/debug/pprof/cmdline"}, 200},
		{adminCall{method: "GET", specPath: "/debug/pprof/symbol", path: "/debug/pprof/symbol"}, 200},
	} {
		if status, _, body := c.do(t, addr); status != c.want {
			t.Errorf("%s %s: %d, want %d: %.200s", c.method, c.path, status, c.want, body)
		}
	}
	// /readyz answers 200 or 503 depending on the moment; either must be
	// as the document says.
	adminCall{method: "GET", specPath: "/readyz", path: "/readyz"}.do(t, addr)

	// The served contracts are the embedded files, byte for byte.
	if _, _, b := (adminCall{method: "GET", specPath: "/v1/openapi.json", path: "/v1/openapi.json"}).do(t, addr); !bytes.Equal(b, apispec.OpenAPI()) {
		t.Error("/v1/openapi.json is not the embedded document")
	}
	for _, name := range apispec.SchemaNames() {
		want, _ := apispec.Schema(name)
		if _, hdr, b := (adminCall{method: "GET", specPath: "/v1/schemas/{name}", path: "/v1/schemas/" + name}).do(t, addr); !bytes.Equal(b, want) {
			t.Errorf("/v1/schemas/%s is not the embedded schema", name)
		} else if ct := hdr.Get("Content-Type"); ct != apispec.SchemaContentType {
			t.Errorf("/v1/schemas/%s: Content-Type %q", name, ct)
		}
	}
}

// ValidateResponse itself refuses what the document does not describe,
// so the test above cannot pass by accident.
func TestValidateResponseRefuses(t *testing.T) {
	t.Parallel()
	jsonHdr := http.Header{"Content-Type": {"application/json"}}
	textHdr := http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
	const redrive = "/v1/redrive/{queue}"
	if err := apispec.ValidateResponse("POST", redrive, 200, jsonHdr, []byte(`{"moved": 2}`)); err != nil {
		t.Fatalf("a valid answer: %v", err)
	}
	for _, c := range []struct {
		name, method, path string
		status             int
		hdr                http.Header
		body               string
	}{
		{"an extra key", "POST", redrive, 200, jsonHdr, `{"moved": 2, "left": 0}`},
		{"a missing key", "POST", redrive, 200, jsonHdr, `{}`},
		{"a negative count", "POST", redrive, 200, jsonHdr, `{"moved": -1}`},
		{"an array for an object", "POST", redrive, 200, jsonHdr, `[]`},
		{"text for JSON", "POST", redrive, 200, textHdr, `{"moved": 2}`},
		{"an unlisted status", "POST", redrive, 409, textHdr, "x"},
		{"a 401 without WWW-Authenticate", "POST", redrive, 401, textHdr, "unauthorized: x"},
		{"JSON for a text error", "POST", redrive, 422, jsonHdr, `{"error": "x"}`},
		{"an undescribed operation", "DELETE", "/v1/devices", 200, jsonHdr, `[]`},
		{"an undescribed path", "GET", "/v1/nothing", 200, jsonHdr, `[]`},
	} {
		if err := apispec.ValidateResponse(c.method, c.path, c.status, c.hdr, []byte(c.body)); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

// The directory route's payload files are payloads too.
func checkPayloadFile(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := apispec.ValidatePayload(b); err != nil {
		t.Errorf("%s: %v", filepath.Base(path), err)
	}
}

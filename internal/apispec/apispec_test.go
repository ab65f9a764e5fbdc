package apispec_test

import (
	"encoding/base64"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net/http"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/apispec"
	"github.com/postern/postern/internal/webhook"
)

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func schemaDoc(t *testing.T, name string) map[string]any {
	t.Helper()
	b, ok := apispec.Schema(name)
	if !ok {
		t.Fatalf("no schema %s in %s", name, apispec.SchemaDir)
	}
	return decode(t, b)
}

// example returns the first of the schema's own examples, encoded.
func example(t *testing.T, name string) map[string]any {
	t.Helper()
	ex, _ := schemaDoc(t, name)["examples"].([]any)
	if len(ex) == 0 {
		t.Fatalf("%s has no examples", name)
	}
	b, _ := json.Marshal(ex[0])
	return decode(t, b)
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// There is a schema for each payload type at the version the webhook
// package sends, and the OpenAPI document references exactly those.
func TestSchemasFollowPayloadVersion(t *testing.T) {
	t.Parallel()
	want := []string{
		apispec.SchemaName(webhook.EventFailed, webhook.PayloadVersion),
		apispec.SchemaName(webhook.EventReceived, webhook.PayloadVersion),
		apispec.SchemaName(webhook.HeaderEnvelope, webhook.PayloadVersion),
	}
	for _, name := range want {
		if _, ok := apispec.Schema(name); !ok {
			t.Errorf("webhook.PayloadVersion is %d but %s/%s does not exist: a new payload version needs its schema file", webhook.PayloadVersion, apispec.SchemaDir, name)
		}
	}
	doc := decode(t, apispec.OpenAPI())
	refs := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if s, ok := e.(string); ok && (k == "$ref") && strings.HasPrefix(s, "schemas/") {
					refs[strings.TrimPrefix(s, "schemas/")] = path
				}
				walk(path+"/"+k, e)
			}
		case []any:
			for _, e := range v {
				walk(path+"[]", e)
			}
		}
	}
	walk("", doc)
	if got := slices.Sorted(maps.Keys(refs)); !slices.Equal(got, want) {
		t.Errorf("%s references the schemas %v, want %v", apispec.OpenAPIFile, got, want)
	}
	enum := doc["paths"].(map[string]any)["/v1/schemas/{name}"].(map[string]any)["get"].(map[string]any)["parameters"].([]any)[0].(map[string]any)["schema"].(map[string]any)["enum"].([]any)
	var names []string
	for _, n := range enum {
		names = append(names, n.(string))
	}
	if slices.Sort(names); !slices.Equal(names, apispec.SchemaNames()) {
		t.Errorf("GET /v1/schemas/{name} lists %v, the files are %v", names, apispec.SchemaNames())
	}
	for _, name := range apispec.SchemaNames() {
		s := schemaDoc(t, name)
		if s["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema = %v, want 2020-12", name, s["$schema"])
		}
	}
}

// Each schema's own examples are valid, and each change a receiver would
// notice (a key added, removed, retyped, nulled, a bad enum value, a wrong
// version) is refused.
func TestValidatePayload(t *testing.T) {
	t.Parallel()
	received := apispec.SchemaName(webhook.EventReceived, 1)
	failed := apispec.SchemaName(webhook.EventFailed, 1)
	for _, name := range []string{received, failed} {
		if err := apispec.ValidatePayload(encode(t, example(t, name))); err != nil {
			t.Errorf("%s example: %v", name, err)
		}
	}
	data := func(m map[string]any) map[string]any { return m["data"].(map[string]any) }
	for _, tc := range []struct {
		name   string
		schema string
		change func(map[string]any)
	}{
		{"key added", received, func(m map[string]any) { data(m)["extra"] = "" }},
		{"key removed", received, func(m map[string]any) { delete(data(m), "html") }},
		{"nested key removed", received, func(m map[string]any) { delete(data(m)["envelope"].(map[string]any), "listener") }},
		{"nested key added", received, func(m map[string]any) { data(m)["client"].(map[string]any)["port"] = 25 }},
		{"null array", received, func(m map[string]any) { data(m)["cc"] = nil }},
		{"null tls", received, func(m map[string]any) { data(m)["client"].(map[string]any)["tls"] = nil }},
		{"retyped", received, func(m map[string]any) { data(m)["raw"].(map[string]any)["size"] = "2048" }},
		{"unknown verdict", received, func(m map[string]any) {
			data(m)["auth"].(map[string]any)["spf"].(map[string]any)["result"] = "ok"
		}},
		{"bad message id", received, func(m map[string]any) { data(m)["id"] = "not-a-ulid" }},
		{"route with a dot", received, func(m map[string]any) { data(m)["route"] = "a.b" }},
		{"local timestamp", received, func(m map[string]any) { m["timestamp"] = "2026-12-05T10:58:07+01:00" }},
		{"not a date", received, func(m map[string]any) { data(m)["date"] = "Fri, 5 Dec 2026 10:58:00 +0100" }},
		{"sha256 not hex", received, func(m map[string]any) { data(m)["raw"].(map[string]any)["sha256"] = "s1" }},
		{"content not base64", received, func(m map[string]any) {
			data(m)["attachments"].([]any)[0].(map[string]any)["content"] = "%%%"
		}},
		{"version 2", received, func(m map[string]any) { data(m)["v"] = 2 }},
		{"unknown type", received, func(m map[string]any) { m["type"] = "email.bounced" }},
		{"failed: unknown reason", failed, func(m map[string]any) { data(m)["reason"] = "gone" }},
		{"failed: expired with 5.0.0", failed, func(m map[string]any) { data(m)["reason"] = "expired" }},
		{"failed: null recipients", failed, func(m map[string]any) { data(m)["recipients"] = nil }},
		{"failed: key added", failed, func(m map[string]any) { data(m)["subject"] = "" }},
	} {
		m := example(t, tc.schema)
		tc.change(m)
		if err := apispec.ValidatePayload(encode(t, m)); err == nil {
			t.Errorf("%s: accepted", tc.name)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
	// auth alone may be null.
	m := example(t, received)
	data(m)["auth"] = nil
	if err := apispec.ValidatePayload(encode(t, m)); err != nil {
		t.Errorf("null auth: %v", err)
	}
}

// The schemas name exactly the keys the Go types encode, all required,
// and no others: a field added to payload.go without its schema fails
// here even before a test sends a payload with it.
func TestSchemasMatchTypes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		schema string
		typ    reflect.Type
	}{
		{apispec.SchemaName(webhook.EventReceived, 1), reflect.TypeFor[webhook.ReceivedEvent]()},
		{apispec.SchemaName(webhook.EventFailed, 1), reflect.TypeFor[webhook.FailedEvent]()},
		{apispec.SchemaName(webhook.HeaderEnvelope, 1), reflect.TypeFor[webhook.RawEnvelope]()},
	} {
		doc := schemaDoc(t, tc.schema)
		matchType(t, tc.schema, doc, doc, tc.typ)
	}
}

var timeType = reflect.TypeFor[time.Time]()

// matchType compares the object schema s (resolving local $refs and the
// non-null branch of an anyOf against doc) with struct type typ, and
// recurses into fields that are structs or slices of structs.
func matchType(t *testing.T, where string, doc, s map[string]any, typ reflect.Type) {
	t.Helper()
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		if typ.Kind() == reflect.Slice {
			if typ.Elem().Kind() == reflect.Uint8 {
				return // []byte: a base64 string
			}
			s = resolve(doc, s)
			items, ok := s["items"].(map[string]any)
			if !ok {
				t.Errorf("%s: %s is an array, the schema has no items", where, typ)
				return
			}
			s = items
		}
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct || typ == timeType {
		return
	}
	s = resolve(doc, s)
	if s["additionalProperties"] != false {
		t.Errorf("%s: additionalProperties is not false", where)
	}
	props, _ := s["properties"].(map[string]any)
	var req []string
	for _, r := range s["required"].([]any) {
		req = append(req, r.(string))
	}
	var keys []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		keys = append(keys, name)
		p, ok := props[name].(map[string]any)
		if !ok {
			t.Errorf("%s: %s.%s encodes as %q, which the schema does not have: add it to %s", where, typ.Name(), f.Name, name, apispec.SchemaDir)
			continue
		}
		matchType(t, where+"."+name, doc, p, f.Type)
	}
	slices.Sort(keys)
	slices.Sort(req)
	if !slices.Equal(keys, req) {
		t.Errorf("%s: %s encodes %v, the schema requires %v", where, typ.Name(), keys, req)
	}
	if got := slices.Sorted(maps.Keys(props)); !slices.Equal(got, keys) {
		t.Errorf("%s: the schema has properties %v, %s encodes %v", where, got, typ.Name(), keys)
	}
}

func resolve(doc, s map[string]any) map[string]any {
	for {
		if ref, ok := s["$ref"].(string); ok {
			def := strings.TrimPrefix(ref, "#/$defs/")
			s = doc["$defs"].(map[string]any)[def].(map[string]any)
			continue
		}
		if alts, ok := s["anyOf"].([]any); ok {
			for _, b := range alts {
				if b := b.(map[string]any); b["type"] != "null" {
					s = b
				}
			}
			continue
		}
		return s
	}
}

func TestValidateEnvelopeHeader(t *testing.T) {
	t.Parallel()
	name := apispec.SchemaName(webhook.HeaderEnvelope, 1)
	ok := base64.RawURLEncoding.EncodeToString(encode(t, example(t, name)))
	if err := apispec.ValidateEnvelopeHeader(ok); err != nil {
		t.Errorf("example: %v", err)
	}
	bad := example(t, name)
	bad["recipients"] = nil
	for what, v := range map[string]string{
		"padded":        base64.URLEncoding.EncodeToString(encode(t, example(t, name))),
		"standard":      base64.StdEncoding.EncodeToString(encode(t, example(t, name))),
		"not json":      base64.RawURLEncoding.EncodeToString([]byte("{")),
		"null array":    base64.RawURLEncoding.EncodeToString(encode(t, bad)),
		"not an object": base64.RawURLEncoding.EncodeToString([]byte("[]")),
	} {
		if err := apispec.ValidateEnvelopeHeader(v); err == nil {
			t.Errorf("%s: accepted", what)
		}
	}
}

// ValidateWebhook checks the headers the OpenAPI webhooks declare.
func TestValidateWebhook(t *testing.T) {
	t.Parallel()
	body := encode(t, example(t, apispec.SchemaName(webhook.EventReceived, 1)))
	now := time.Date(2026, 12, 5, 9, 58, 7, 0, time.UTC)
	id := "01KBQ3W5M7Z0R8T4V6X9YB2C3D.app"
	header := func() http.Header {
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("User-Agent", "Postern/1")
		h.Set(webhook.HeaderID, id)
		h.Set(webhook.HeaderTimestamp, "1796464687")
		h.Set(webhook.HeaderSignature, webhook.Sign([]byte("k1"), id, now, body)+" "+webhook.Sign([]byte("k2"), id, now, body))
		return h
	}
	if err := apispec.ValidateWebhook(header(), body); err != nil {
		t.Fatalf("valid request: %v", err)
	}
	for what, change := range map[string]func(http.Header){
		"no signature":       func(h http.Header) { h.Del(webhook.HeaderSignature) },
		"v2 signature":       func(h http.Header) { h.Set(webhook.HeaderSignature, "v2,abc") },
		"id of a notice":     func(h http.Header) { h.Set(webhook.HeaderID, id+".failed") },
		"ms timestamp":       func(h http.Header) { h.Set(webhook.HeaderTimestamp, "1796464687.5") },
		"other agent":        func(h http.Header) { h.Set("User-Agent", "Go-http-client/1.1") },
		"form content type":  func(h http.Header) { h.Set("Content-Type", "application/x-www-form-urlencoded") },
		"another route's id": func(h http.Header) { h.Set(webhook.HeaderID, "01KBQ3W5M7Z0R8T4V6X9YB2C3D.archive") },
	} {
		h := header()
		change(h)
		if err := apispec.ValidateWebhook(h, body); err == nil {
			t.Errorf("%s: accepted", what)
		}
	}
	raw := header()
	raw.Set("Content-Type", "message/rfc822")
	raw.Set(webhook.HeaderID, "01KBQ3W5M7Z0R8T4V6X9YB2C3D.archive") // the envelope example's route
	if err := apispec.ValidateWebhook(raw, []byte("Subject: x\r\n\r\nx\r\n")); err == nil {
		t.Error("raw delivery without webhook-postern-envelope: accepted")
	}
	env := example(t, apispec.SchemaName(webhook.HeaderEnvelope, 1))
	raw.Set(webhook.HeaderEnvelope, base64.RawURLEncoding.EncodeToString(encode(t, env)))
	if err := apispec.ValidateWebhook(raw, []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Errorf("raw delivery: %v", err)
	}
	env["sender"] = nil
	raw.Set(webhook.HeaderEnvelope, base64.RawURLEncoding.EncodeToString(encode(t, env)))
	if err := apispec.ValidateWebhook(raw, []byte("Subject: x\r\n\r\nx\r\n")); err == nil {
		t.Error("raw delivery with a bad envelope: accepted")
	}
}

// Every schema in the OpenAPI document compiles (a typo in a $ref shows
// here rather than in the first test that meets it).
func TestOpenAPICompiles(t *testing.T) {
	t.Parallel()
	doc := decode(t, apispec.OpenAPI())
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", v)
	}
	ops, err := apispec.Operations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) == 0 {
		t.Fatal("no operations")
	}
	seen := map[string]bool{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if id, ok := v["operationId"].(string); ok {
				if seen[id] {
					t.Errorf("operationId %s twice", id)
				}
				seen[id] = true
			}
			for k, e := range v {
				walk(path+"/"+k, e)
			}
		case []any:
			for _, e := range v {
				walk(path, e)
			}
		}
	}
	walk("", doc)
	if err := apispec.CompileAll(); err != nil {
		t.Error(err)
	}
}

// Every operation behind the admin gate lists the gate's refusals (401,
// 403 and 421; 415 too for anything but GET), and declares each {name} of
// its path as a path parameter: what a client generator needs, and what
// the route test cannot see.
func TestOpenAPIOperationsComplete(t *testing.T) {
	t.Parallel()
	var doc struct {
		Paths map[string]map[string]json.RawMessage
	}
	if err := json.Unmarshal(apispec.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	full := decode(t, apispec.OpenAPI())
	type param struct {
		Ref  string `json:"$ref"`
		Name string
		In   string
	}
	resolve := func(p param) param {
		if p.Ref == "" {
			return p
		}
		var out param
		v := full
		for _, k := range strings.Split(strings.TrimPrefix(p.Ref, "#/"), "/") {
			v, _ = v[k].(map[string]any)
		}
		b, _ := json.Marshal(v)
		json.Unmarshal(b, &out)
		return out
	}
	for path, item := range doc.Paths {
		var shared []param
		if raw, ok := item["parameters"]; ok {
			json.Unmarshal(raw, &shared)
		}
		for method, raw := range item {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			var op struct {
				Security   *[]map[string][]string
				Parameters []param
				Responses  map[string]json.RawMessage
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			where := strings.ToUpper(method) + " " + path
			gated := op.Security == nil || len(*op.Security) > 0
			want := []string{}
			if gated {
				want = append(want, "401", "403", "421")
				if method != "get" && method != "head" {
					want = append(want, "415")
				}
			}
			for _, code := range want {
				if _, ok := op.Responses[code]; !ok {
					t.Errorf("%s: no %s response in %s, though the admin gate can answer it", where, code, apispec.OpenAPIFile)
				}
			}
			declared := map[string]bool{}
			for _, p := range append(shared, op.Parameters...) {
				if p = resolve(p); p.In == "path" {
					declared[p.Name] = true
				}
			}
			for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
				if !declared[m[1]] {
					t.Errorf("%s: the path parameter {%s} is not declared", where, m[1])
				}
				delete(declared, m[1])
			}
			for name := range declared {
				t.Errorf("%s: declares a path parameter %s the path does not have", where, name)
			}
		}
	}
}

// The trace events the document names are the trace package's: its Event
// constants, and the receipt that trace.Read adds.
func TestTraceEventsMatchTracePackage(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	names, err := filepath.Glob(filepath.Join("..", "trace", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"received"}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if !strings.HasPrefix(n.Name, "Event") || i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						want = append(want, v)
					}
				}
			}
		}
	}
	doc := decode(t, apispec.OpenAPI())
	var got []string
	for _, v := range lookupAny(doc, "components", "schemas", "TraceEvent", "properties", "event", "enum").([]any) {
		got = append(got, v.(string))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s lists the trace events %v; internal/trace has %v", apispec.OpenAPIFile, got, want)
	}
}

func lookupAny(v any, keys ...string) any {
	for _, k := range keys {
		v = v.(map[string]any)[k]
	}
	return v
}

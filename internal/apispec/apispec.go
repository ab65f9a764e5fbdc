// Package apispec holds Postern's public contracts, the OpenAPI 3.1 document
// of the admin API and the JSON Schemas (2020-12) of the webhook payloads,
// and checks documents and responses against them.
package apispec

import (
	"bytes"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Where the contracts live in the repository, for messages that ask for a
// change to them.
const (
	OpenAPIFile = "internal/apispec/openapi.json"
	SchemaDir   = "internal/apispec/schemas"
)

// Media types the admin API serves the contracts with.
const (
	OpenAPIContentType = "application/json"
	SchemaContentType  = "application/schema+json"
)

//go:embed openapi.json schemas/*.json
var files embed.FS

// OpenAPI returns the OpenAPI document. Its payload schemas are referenced
// relative to it (schemas/<name>), which resolves both in the repository
// and where the admin API serves them (/v1/openapi.json, /v1/schemas/<name>).
func OpenAPI() []byte {
	b, err := files.ReadFile("openapi.json")
	if err != nil {
		panic(err) // embedded: cannot happen
	}
	return b
}

// Schema returns the payload schema called name (as email.received.v1.json),
// and false when there is none.
func Schema(name string) ([]byte, bool) {
	if !slices.Contains(SchemaNames(), name) {
		return nil, false
	}
	b, err := files.ReadFile("schemas/" + name)
	return b, err == nil
}

// SchemaNames lists the payload schemas, sorted.
func SchemaNames() []string {
	entries, err := fs.ReadDir(files, "schemas")
	if err != nil {
		panic(err) // embedded: cannot happen
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// SchemaName is the file name of the schema of a payload of type typ (an
// event type, or "webhook-postern-envelope") at version v.
func SchemaName(typ string, v int) string {
	return typ + ".v" + strconv.Itoa(v) + ".json"
}

// The URLs the compiler knows the documents by: the paths the admin API
// serves them at, so relative references resolve as a client resolves them.
const (
	baseURL    = "https://postern.invalid/v1/"
	openAPIURL = baseURL + "openapi.json"
)

// compiled holds the contracts compiled once per process; it is never
// changed after it is built.
var compiled = sync.OnceValues(compile)

type contracts struct {
	c   *jsonschema.Compiler
	doc map[string]any // the OpenAPI document, decoded
	mu  sync.Mutex     // guards c, which caches what it compiles
}

func compile() (*contracts, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.AssertContent()
	c.RegisterContentEncoding(&jsonschema.Decoder{Name: "base64url", Decode: base64.RawURLEncoding.DecodeString})
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(OpenAPI()))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", OpenAPIFile, err)
	}
	if err := c.AddResource(openAPIURL, doc); err != nil {
		return nil, err
	}
	for _, name := range SchemaNames() {
		b, _ := Schema(name)
		s, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", SchemaDir, name, err)
		}
		if err := c.AddResource(baseURL+"schemas/"+name, s); err != nil {
			return nil, err
		}
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: not a JSON object", OpenAPIFile)
	}
	return &contracts{c: c, doc: m}, nil
}

func (cs *contracts) schema(url string) (*jsonschema.Schema, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.c.Compile(url)
}

// validate checks v (decoded with jsonschema.UnmarshalJSON) against the
// schema at url.
func validate(url string, v any) error {
	cs, err := compiled()
	if err != nil {
		return err
	}
	sch, err := cs.schema(url)
	if err != nil {
		return fmt.Errorf("compile %s: %w", url, err)
	}
	return sch.Validate(v)
}

// ValidatePayload checks a JSON webhook body (email.received or
// email.failed, as POSTed or written to a directory route) against the
// schema of its type and data.v. A body of a version with no schema file
// fails: a new payload version needs a new schema.
func ValidatePayload(body []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("payload is not JSON: %w", err)
	}
	obj, _ := v.(map[string]any)
	typ, _ := obj["type"].(string)
	data, _ := obj["data"].(map[string]any)
	n, _ := data["v"].(json.Number)
	ver, err := strconv.Atoi(string(n))
	if typ == "" || err != nil {
		return fmt.Errorf("payload has no string type and integer data.v: %.200s", body)
	}
	name := SchemaName(typ, ver)
	if _, ok := Schema(name); !ok {
		return fmt.Errorf("no schema %s/%s for a payload of type %q and data.v %d", SchemaDir, name, typ, ver)
	}
	if err := validate(baseURL+"schemas/"+name, v); err != nil {
		return fmt.Errorf("payload does not match %s/%s: %w", SchemaDir, name, err)
	}
	return nil
}

// ValidateEnvelopeHeader checks the value of a raw delivery's
// webhook-postern-envelope header: unpadded base64url of JSON that matches
// the envelope schema of its v.
func ValidateEnvelopeHeader(value string) error {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return fmt.Errorf("webhook-postern-envelope is not unpadded base64url: %w", err)
	}
	if err := ValidateEnvelope(raw); err != nil {
		return fmt.Errorf("webhook-postern-envelope: %w", err)
	}
	return nil
}

// ValidateEnvelope checks a raw delivery's envelope as JSON (the decoded
// header, or a directory route's <webhook-id>.envelope.json) against the
// envelope schema of its v.
func ValidateEnvelope(b []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("envelope is not JSON: %w", err)
	}
	obj, _ := v.(map[string]any)
	n, _ := obj["v"].(json.Number)
	ver, err := strconv.Atoi(string(n))
	if err != nil {
		return fmt.Errorf("envelope has no integer v: %.200s", b)
	}
	name := SchemaName("webhook-postern-envelope", ver)
	if _, ok := Schema(name); !ok {
		return fmt.Errorf("no schema %s/%s for an envelope of v %d", SchemaDir, name, ver)
	}
	if err := validate(baseURL+"schemas/"+name, v); err != nil {
		return fmt.Errorf("envelope does not match %s/%s: %w", SchemaDir, name, err)
	}
	return nil
}

// ValidateWebhook checks one request Postern sent to an application, as a
// receiver got it: which webhook of the OpenAPI document it is (by its
// content type and, for JSON, its type), every header parameter that
// webhook declares (required ones present, each value matching its schema,
// the raw envelope decoded and checked), and the body against its payload
// schema.
func ValidateWebhook(h http.Header, body []byte) error {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return fmt.Errorf("webhook request Content-Type %q: %w", h.Get("Content-Type"), err)
	}
	var name string
	switch mt {
	case "application/json":
		var head struct{ Type string }
		if err := json.Unmarshal(body, &head); err != nil {
			return fmt.Errorf("webhook body is not JSON: %w", err)
		}
		name = head.Type
	case "message/rfc822":
		name = "email.received.raw"
	default:
		return fmt.Errorf("webhook request has Content-Type %s, which no webhook in %s has", mt, OpenAPIFile)
	}
	cs, err := compiled()
	if err != nil {
		return err
	}
	op, ok := lookup(cs.doc, "webhooks", name, "post").(map[string]any)
	if !ok {
		return fmt.Errorf("%s has no webhook %q (Content-Type %s)", OpenAPIFile, name, mt)
	}
	if lookup(op, "requestBody", "content", mt) == nil {
		return fmt.Errorf("%s: webhook %q takes no %s body", OpenAPIFile, name, mt)
	}
	var errs []error
	params, _ := op["parameters"].([]any)
	for i := range params {
		ptr := "/webhooks/" + escape(name) + "/post/parameters/" + strconv.Itoa(i)
		p, ok := params[i].(map[string]any)
		if ref, _ := p["$ref"].(string); ok && ref != "" {
			ptr = strings.TrimPrefix(ref, "#")
			p, ok = lookupPointer(cs.doc, ptr).(map[string]any)
		}
		if !ok || p["in"] != "header" {
			continue
		}
		hname, _ := p["name"].(string)
		vals := h.Values(hname)
		if len(vals) == 0 {
			if p["required"] == true {
				errs = append(errs, fmt.Errorf("webhook %s: no %s header", name, hname))
			}
			continue
		}
		if len(vals) > 1 {
			errs = append(errs, fmt.Errorf("webhook %s: %d %s headers", name, len(vals), hname))
		}
		if err := validate(openAPIURL+"#"+ptr+"/schema", vals[0]); err != nil {
			errs = append(errs, fmt.Errorf("webhook %s: header %s: %w", name, hname, err))
		}
	}
	if mt == "application/json" {
		// The schema of the body's own data.v, then the one the document
		// references (the same file while the version is current).
		if err := ValidatePayload(body); err != nil {
			errs = append(errs, fmt.Errorf("webhook %s: %w", name, err))
		} else if err := validate(openAPIURL+"#/webhooks/"+escape(name)+"/post/requestBody/content/"+escape(mt)+"/schema", mustDecode(body)); err != nil {
			errs = append(errs, fmt.Errorf("webhook %s: body does not match the schema %s references: %w", name, OpenAPIFile, err))
		}
	}
	if err := checkWebhookID(name, h, body); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkWebhookID checks that webhook-id names the delivery the request
// carries: <message id>.<route> for a payload, the failed delivery's id
// and .failed for a notice.
func checkWebhookID(name string, h http.Header, body []byte) error {
	var id, route, want string
	switch name {
	case "email.received":
		var ev struct{ Data struct{ ID, Route string } }
		if json.Unmarshal(body, &ev) != nil {
			return nil // reported above
		}
		id, route = ev.Data.ID, ev.Data.Route
	case "email.received.raw":
		raw, err := base64.RawURLEncoding.DecodeString(h.Get("webhook-postern-envelope"))
		var env struct{ ID, Route string }
		if err != nil || json.Unmarshal(raw, &env) != nil {
			return nil // reported above
		}
		id, route = env.ID, env.Route
	case "email.failed":
		var ev struct {
			Data struct {
				WebhookID string `json:"webhook_id"`
			}
		}
		if json.Unmarshal(body, &ev) != nil {
			return nil
		}
		want = ev.Data.WebhookID + ".failed"
	default:
		return nil
	}
	if want == "" {
		want = id + "." + route
	}
	if got := h.Get("webhook-id"); got != want {
		return fmt.Errorf("webhook %s: webhook-id is %q, want %q from the payload", name, got, want)
	}
	return nil
}

func mustDecode(b []byte) any {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	return v
}

// ValidateResponse checks one admin API answer against the OpenAPI
// document: the operation method path (path as the document writes it,
// with {name} for path parameters) must list status, or a range such as
// 4XX, or default; the Content-Type must be one the response declares, or
// the body empty when it declares none; headers it marks required must be
// there; and a JSON body must match the response's schema.
func ValidateResponse(method, route string, status int, h http.Header, body []byte) error {
	cs, err := compiled()
	if err != nil {
		return err
	}
	opPtr := "/paths/" + escape(route) + "/" + strings.ToLower(method)
	if _, ok := lookupPointer(cs.doc, opPtr).(map[string]any); !ok {
		return fmt.Errorf("%s describes no %s %s", OpenAPIFile, method, route)
	}
	var respPtr string
	for _, code := range []string{strconv.Itoa(status), strconv.Itoa(status/100) + "XX", "default"} {
		if lookupPointer(cs.doc, opPtr+"/responses/"+code) != nil {
			respPtr = opPtr + "/responses/" + code
			break
		}
	}
	if respPtr == "" {
		return fmt.Errorf("%s %s answered %d, which %s does not list for it", method, route, status, OpenAPIFile)
	}
	resp, _ := lookupPointer(cs.doc, respPtr).(map[string]any)
	if ref, _ := resp["$ref"].(string); ref != "" {
		respPtr = strings.TrimPrefix(ref, "#")
		resp, _ = lookupPointer(cs.doc, respPtr).(map[string]any)
	}
	var errs []error
	if hs, ok := resp["headers"].(map[string]any); ok {
		for name, hv := range hs {
			hobj, _ := hv.(map[string]any)
			got := h.Get(name)
			if got == "" {
				if hobj["required"] == true {
					errs = append(errs, fmt.Errorf("%s %s %d: no %s header", method, route, status, name))
				}
				continue
			}
			if err := validate(openAPIURL+"#"+respPtr+"/headers/"+escape(name)+"/schema", got); err != nil {
				errs = append(errs, fmt.Errorf("%s %s %d: header %s: %w", method, route, status, name, err))
			}
		}
	}
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if len(body) > 0 {
			errs = append(errs, fmt.Errorf("%s %s %d: a body (%d bytes) where %s declares none", method, route, status, len(body), OpenAPIFile))
		}
		return errors.Join(errs...)
	}
	ct := h.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	key := ""
	if err == nil {
		// The most specific entry that covers mt (OpenAPI media ranges).
		major, _, _ := strings.Cut(mt, "/")
		for _, k := range []string{mt, major + "/*", "*/*"} {
			if content[k] != nil {
				key = k
				break
			}
		}
	}
	if key == "" {
		return errors.Join(append(errs, fmt.Errorf("%s %s %d: Content-Type %q, want one of %v (%s)", method, route, status, ct, slices.Sorted(maps.Keys(content)), OpenAPIFile))...)
	}
	schemaPtr := respPtr + "/content/" + escape(key) + "/schema"
	if lookupPointer(cs.doc, schemaPtr) == nil {
		return errors.Join(errs...)
	}
	var v any
	if mt == "application/json" || strings.HasSuffix(mt, "+json") {
		if v, err = jsonschema.UnmarshalJSON(bytes.NewReader(body)); err != nil {
			return errors.Join(append(errs, fmt.Errorf("%s %s %d: body is not JSON: %w", method, route, status, err))...)
		}
	} else {
		v = string(body)
	}
	if err := validate(openAPIURL+"#"+schemaPtr, v); err != nil {
		errs = append(errs, fmt.Errorf("%s %s %d: body does not match %s: %w", method, route, status, OpenAPIFile, err))
	}
	return errors.Join(errs...)
}

// Operations lists the admin API's operations in the OpenAPI document as
// "METHOD /path", with the path as the document writes it, sorted.
func Operations() ([]string, error) {
	cs, err := compiled()
	if err != nil {
		return nil, err
	}
	paths, _ := cs.doc["paths"].(map[string]any)
	var out []string
	for p, item := range paths {
		ops, _ := item.(map[string]any)
		for m := range ops {
			switch m {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				out = append(out, strings.ToUpper(m)+" "+p)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// escape makes s one JSON Pointer token (RFC 6901).
func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func lookup(v any, keys ...string) any {
	for _, k := range keys {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func lookupPointer(v any, ptr string) any {
	if ptr == "" {
		return v
	}
	var keys []string
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		keys = append(keys, strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~"))
	}
	return lookup(v, keys...)
}

// CompileAll compiles every schema the OpenAPI document holds (components,
// parameters, headers, bodies) and every payload schema, so that a broken
// reference shows at once rather than in the first check that meets it.
func CompileAll() error {
	cs, err := compiled()
	if err != nil {
		return err
	}
	var errs []error
	var walk func(ptr string, v any)
	walk = func(ptr string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				p := ptr + "/" + escape(k)
				isSchema := k == "schema" || strings.HasSuffix(ptr, "/components/schemas")
				if _, obj := e.(map[string]any); isSchema && obj {
					if _, err := cs.schema(openAPIURL + "#" + p); err != nil {
						errs = append(errs, fmt.Errorf("%s#%s: %w", OpenAPIFile, p, err))
					}
					continue
				}
				walk(p, e)
			}
		case []any:
			for i, e := range v {
				walk(ptr+"/"+strconv.Itoa(i), e)
			}
		}
	}
	walk("", cs.doc)
	for _, name := range SchemaNames() {
		if _, err := cs.schema(baseURL + "schemas/" + name); err != nil {
			errs = append(errs, fmt.Errorf("%s/%s: %w", SchemaDir, name, err))
		}
	}
	return errors.Join(errs...)
}

package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// keyErrors walks a YAML document against Config's yaml tags and returns
// every unknown key and every value of the wrong kind, each named by its
// key path (routes[2].webhook.alow). yaml.v3's own KnownFields errors name
// Go types and stop at the first problem of a kind; operators write keys.
func keyErrors(b []byte) []error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return []error{fmt.Errorf("not valid YAML: %w", err)}
	}
	w := walker{budget: maxWalkNodes}
	if len(doc.Content) > 0 {
		w.node(doc.Content[0], reflect.TypeFor[Config](), "", 0)
	}
	return w.errs
}

// maxWalkNodes bounds the walk: aliases may repeat a subtree many times
// over ("billion laughs"), and no configuration has this many values.
const maxWalkNodes = 100_000

// walker collects the problems of one walk.
type walker struct {
	errs   []error
	budget int // nodes left to visit
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// linePrefix is how yaml.v3 and Duration start their messages; the key
// path replaces it.
var linePrefix = regexp.MustCompile(`^(yaml: )?line \d+: `)

// node checks n against t at path. depth bounds alias chains.
func (w *walker) node(n *yaml.Node, t reflect.Type, path string, depth int) {
	if depth > 64 || w.budget <= 0 {
		return
	}
	w.budget--
	if w.budget == 0 {
		w.errs = append(w.errs, errors.New("(top level): too many values, or aliases that repeat them too often; write the configuration out plainly"))
		return
	}
	errs := &w.errs
	bad := func(format string, args ...any) {
		key := path
		if key == "" {
			key = "(top level)"
		}
		*errs = append(*errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias != nil {
			w.node(n.Alias, t, path, depth+1)
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // null leaves the default
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			bad("%s", linePrefix.ReplaceAllString(err.Error(), ""))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			bad("want a section of key: value lines, got %s", describe(n))
			return
		}
		fields := yamlFields(t)
		dupKeys(n, path, errs)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" && k.Tag == "!!merge" {
				w.merge(v, t, path, depth)
				continue
			}
			sub := joinKey(path, k.Value)
			f, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s: unknown key; %s", sub, suggest(k.Value, fields)))
				continue
			}
			w.node(v, f.Type, sub, depth+1)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			bad("want a list, e.g. [\"a\", \"b\"] or lines starting with \"- \", got %s", describe(n))
			return
		}
		for i, item := range n.Content {
			w.node(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), depth+1)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			bad("want a section of name: value lines, got %s", describe(n))
			return
		}
		dupKeys(n, path, errs)
		for i := 0; i+1 < len(n.Content); i += 2 {
			w.node(n.Content[i+1], t.Elem(), joinKey(path, n.Content[i].Value), depth+1)
		}
	case reflect.Interface:
	default:
		if n.Kind != yaml.ScalarNode {
			bad("want %s, got %s", kindWord(t), describe(n))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			bad("want %s, got %q", kindWord(t), n.Value)
		}
	}
}

// dupKeys reports a key a mapping holds twice: YAML refuses it, and which
// value was meant is the operator's call.
func dupKeys(n *yaml.Node, path string, errs *[]error) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode || k.Value == "<<" && k.Tag == "!!merge" {
			continue
		}
		if line, ok := seen[k.Value]; ok {
			*errs = append(*errs, fmt.Errorf("%s: is set twice (lines %d and %d); keep one", joinKey(path, k.Value), line, k.Line))
			continue
		}
		seen[k.Value] = k.Line
	}
}

// merge checks a "<<" merge value: a mapping or a list of them.
func (w *walker) merge(v *yaml.Node, t reflect.Type, path string, depth int) {
	if v.Kind == yaml.SequenceNode {
		for _, m := range v.Content {
			w.node(m, t, path, depth+1)
		}
		return
	}
	w.node(v, t, path, depth+1)
}

func joinKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// yamlFields maps t's yaml key names to its fields.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f
	}
	return out
}

// suggest names the nearest known key when one is close enough to be a
// slip of the keyboard.
func suggest(k string, fields map[string]reflect.StructField) string {
	best, bestD := "", 1<<30
	for name := range fields {
		if d := editDistance(strings.ToLower(k), name); d < bestD || d == bestD && name < best {
			best, bestD = name, d
		}
	}
	if best != "" && bestD <= max(2, len(k)/3) {
		return "did you mean " + best + "?"
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	return "the keys here are " + strings.Join(names, ", ") + " (check the indentation too)"
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// describe names what n is without its value, which may be a secret or
// a URL with a token (secrets: "whsec_..." where a list belongs).
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a section"
	case yaml.SequenceNode:
		return "a list"
	}
	return "a single value"
}

func kindWord(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a single value (text)"
}

// decodeInto decodes b over c. With strict, any problem keyErrors finds
// stops it, each reported by key path with source before it; without, c
// gets what could be decoded and the problems are returned all the same
// (check-config goes on to validate the rest).
func decodeInto(c *Config, source string, b []byte, strict bool) error {
	errs := keyErrors(b)
	for i, err := range errs {
		errs[i] = fmt.Errorf("config %s: %w", source, err)
	}
	if strict && len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Lists replace the defaults rather than merge into them.
	var probe map[string]any
	if err := yaml.Unmarshal(b, &probe); err != nil {
		return errors.Join(errs...) // keyErrors reported it
	}
	if _, ok := probe["listeners"]; ok {
		c.Listeners = nil
	}
	if _, ok := probe["identities"]; ok {
		c.Identities = nil
	}
	if _, ok := probe["routes"]; ok {
		c.Routes = nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(strict)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) && len(errs) == 0 {
		// keyErrors found nothing, so this is something it does not know:
		// pass it on as it is.
		errs = append(errs, fmt.Errorf("config %s: %w", source, err))
	}
	return errors.Join(errs...)
}

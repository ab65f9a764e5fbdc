// Package templatetest checks template.yaml, the AWS SAM template Postern
// deploys with, against the invariants production depends on: dead-letter
// queues, visibility timeouts, least-privilege roles, encryption, the
// gateway's hardening, and that the functions' environment is a
// configuration Postern loads. Its tests also cross-compile the binaries the
// template ships and run cfn-guard over it.
//
// This file reads CloudFormation YAML. Short-form tags (!Ref, !GetAtt,
// !Sub, ...) become the long form ({"Ref": ...}, {"Fn::GetAtt": [...]}) so
// the tests can see, and resolve, every intrinsic function.
package templatetest

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Template is a decoded CloudFormation (SAM) template.
type Template struct {
	Transform  any
	Parameters map[string]map[string]any
	Conditions map[string]any
	Globals    map[string]any
	Resources  map[string]Resource
	Outputs    map[string]any
}

// Resource is one entry of Resources.
type Resource struct {
	Type           string
	Condition      string
	DeletionPolicy string
	Properties     map[string]any
	Metadata       map[string]any
}

// Load reads and decodes the template at path.
func Load(path string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	return Parse(b)
}

// Parse decodes template text.
func Parse(b []byte) (*Template, error) {
	doc, err := DecodeYAML(b)
	if err != nil {
		return nil, err
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, errors.New("template: top level is not a mapping")
	}
	t := &Template{
		Transform:  top["Transform"],
		Parameters: map[string]map[string]any{},
		Conditions: asMap(top["Conditions"]),
		Globals:    asMap(top["Globals"]),
		Resources:  map[string]Resource{},
		Outputs:    asMap(top["Outputs"]),
	}
	for name, p := range asMap(top["Parameters"]) {
		t.Parameters[name] = asMap(p)
	}
	res, ok := top["Resources"].(map[string]any)
	if !ok || len(res) == 0 {
		return nil, errors.New("template: no Resources")
	}
	for name, r := range res {
		m, ok := r.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("template: resource %s is not a mapping", name)
		}
		typ, _ := m["Type"].(string)
		if typ == "" {
			return nil, fmt.Errorf("template: resource %s has no Type", name)
		}
		cond, _ := m["Condition"].(string)
		del, _ := m["DeletionPolicy"].(string)
		t.Resources[name] = Resource{Type: typ, Condition: cond, DeletionPolicy: del, Properties: asMap(m["Properties"]), Metadata: asMap(m["Metadata"])}
	}
	return t, nil
}

// OfType returns the logical ids of the resources of type typ.
func (t *Template) OfType(typ string) []string {
	var ids []string
	for id, r := range t.Resources {
		if r.Type == typ {
			ids = append(ids, id)
		}
	}
	return sortedStrings(ids)
}

// DecodeYAML decodes one YAML document, turning CloudFormation short-form
// tags into their long form.
func DecodeYAML(b []byte) (any, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	if n.Kind != yaml.DocumentNode || len(n.Content) != 1 {
		return nil, errors.New("template: want exactly one YAML document")
	}
	return fromNode(n.Content[0])
}

func fromNode(n *yaml.Node) (any, error) {
	var v any
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("template: line %d: key %q repeated", n.Content[i].Line, k)
			}
			val, err := fromNode(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[k] = val
		}
		v = m
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			val, err := fromNode(c)
			if err != nil {
				return nil, err
			}
			l = append(l, val)
		}
		v = l
	case yaml.ScalarNode:
		if isCFNTag(n.Tag) {
			v = n.Value
		} else if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("template: line %d: %w", n.Line, err)
		}
	case yaml.AliasNode:
		return fromNode(n.Alias)
	default:
		return nil, fmt.Errorf("template: line %d: unexpected YAML node", n.Line)
	}
	if !isCFNTag(n.Tag) {
		return v, nil
	}
	return longForm(n.Tag, v, n.Line)
}

// isCFNTag reports whether tag is a local tag such as !Ref (YAML's own
// tags start with !!).
func isCFNTag(tag string) bool { return strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!") }

func longForm(tag string, v any, line int) (any, error) {
	name := strings.TrimPrefix(tag, "!")
	switch name {
	case "Ref", "Condition":
		return map[string]any{name: v}, nil
	case "GetAtt":
		// !GetAtt A.B is ["A", "B"]; attributes may contain dots themselves.
		if s, ok := v.(string); ok {
			id, attr, found := strings.Cut(s, ".")
			if !found {
				return nil, fmt.Errorf("template: line %d: !GetAtt %q needs Resource.Attribute", line, s)
			}
			v = []any{id, attr}
		}
		return map[string]any{"Fn::GetAtt": v}, nil
	case "Base64", "Cidr", "FindInMap", "GetAZs", "ImportValue", "Join", "Select", "Split", "Sub", "Transform",
		"And", "Equals", "If", "Not", "Or", "Length", "ToJsonString":
		return map[string]any{"Fn::" + name: v}, nil
	}
	return nil, fmt.Errorf("template: line %d: unknown tag %s", line, tag)
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	if m == nil {
		return map[string]any{}
	}
	return m
}

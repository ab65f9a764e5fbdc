package templatetest

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Pseudo parameter values used when resolving.
var pseudo = map[string]string{
	"AWS::AccountId": "123456789012",
	"AWS::Partition": "aws",
	"AWS::Region":    "us-east-1",
	"AWS::StackName": "postern",
	"AWS::URLSuffix": "amazonaws.com",
}

// Resolved is a template with its conditions decided and its intrinsic
// functions evaluated for one set of parameter values: resources whose
// condition is false are gone, Fn::If picked its branch, AWS::NoValue
// removed its key or list item, and parameters and pseudo parameters are
// substituted. References to resources stay symbolic, in Fn::Sub syntax:
// !Ref Bucket is "${Bucket}" and !GetAtt Bucket.Arn is "${Bucket.Arn}".
type Resolved struct {
	Resources  map[string]Resource
	Conditions map[string]bool
	Outputs    map[string]any
}

type resolver struct {
	t      *Template
	params map[string]any
	conds  map[string]bool
	busy   map[string]bool
}

// noValue marks a removed value (AWS::NoValue) until its container drops it.
type noValueT struct{}

var noValue = noValueT{}

// Resolve evaluates t for the given parameter values (defaults fill the
// rest). SAM Globals are merged into every AWS::Serverless::Function.
func (t *Template) Resolve(values map[string]string) (*Resolved, error) {
	r := &resolver{t: t, params: map[string]any{}, conds: map[string]bool{}, busy: map[string]bool{}}
	for name, p := range t.Parameters {
		v, ok := values[name]
		if !ok {
			d, has := p["Default"]
			if !has {
				continue
			}
			v = scalarString(d)
		}
		typ, _ := p["Type"].(string)
		if typ == "CommaDelimitedList" || strings.HasPrefix(typ, "List<") {
			var l []any
			for _, s := range strings.Split(v, ",") {
				l = append(l, strings.TrimSpace(s))
			}
			r.params[name] = l
		} else {
			r.params[name] = v
		}
	}
	for name := range values {
		if _, ok := t.Parameters[name]; !ok {
			return nil, fmt.Errorf("resolve: no parameter %s", name)
		}
	}
	for name := range t.Conditions {
		if _, err := r.condition(name); err != nil {
			return nil, err
		}
	}
	out := &Resolved{Resources: map[string]Resource{}, Conditions: r.conds}
	for id, res := range t.Resources {
		if res.Condition != "" {
			ok, err := r.condition(res.Condition)
			if err != nil {
				return nil, fmt.Errorf("resolve %s: %w", id, err)
			}
			if !ok {
				continue
			}
		}
		props := res.Properties
		if res.Type == "AWS::Serverless::Function" {
			props = mergeGlobals(asMap(t.Globals["Function"]), props)
		}
		v, err := r.eval(props)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", id, err)
		}
		pm, _ := v.(map[string]any)
		if pm == nil {
			pm = map[string]any{}
		}
		out.Resources[id] = Resource{Type: res.Type, Condition: res.Condition, DeletionPolicy: res.DeletionPolicy, Properties: pm, Metadata: res.Metadata}
	}
	o, err := r.eval(t.Outputs)
	if err != nil {
		return nil, fmt.Errorf("resolve Outputs: %w", err)
	}
	out.Outputs = asMap(o)
	return out, nil
}

// mergeGlobals applies SAM Globals: the function's own values win; maps
// (Environment.Variables, Tags) merge key by key.
func mergeGlobals(globals, props map[string]any) map[string]any {
	out := maps.Clone(props)
	if out == nil {
		out = map[string]any{}
	}
	for k, gv := range globals {
		pv, ok := out[k]
		if !ok {
			out[k] = gv
			continue
		}
		gm, gok := gv.(map[string]any)
		pm, pok := pv.(map[string]any)
		if gok && pok && !isIntrinsic(gm) && !isIntrinsic(pm) {
			out[k] = mergeGlobals(gm, pm)
		}
	}
	return out
}

func isIntrinsic(m map[string]any) bool {
	if len(m) != 1 {
		return false
	}
	for k := range m {
		return k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::")
	}
	return false
}

func (r *resolver) condition(name string) (bool, error) {
	if v, ok := r.conds[name]; ok {
		return v, nil
	}
	if r.busy[name] {
		return false, fmt.Errorf("condition %s refers to itself", name)
	}
	def, ok := r.t.Conditions[name]
	if !ok {
		return false, fmt.Errorf("no condition %s", name)
	}
	r.busy[name] = true
	v, err := r.boolean(def)
	delete(r.busy, name)
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	r.conds[name] = v
	return v, nil
}

func (r *resolver) boolean(v any) (bool, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false, fmt.Errorf("not a condition function: %v", v)
	}
	for fn, arg := range m {
		args, _ := arg.([]any)
		switch fn {
		case "Condition":
			name, _ := arg.(string)
			return r.condition(name)
		case "Fn::Equals":
			if len(args) != 2 {
				return false, fmt.Errorf("Fn::Equals wants 2 arguments")
			}
			a, err := r.eval(args[0])
			if err != nil {
				return false, err
			}
			b, err := r.eval(args[1])
			if err != nil {
				return false, err
			}
			return scalarString(a) == scalarString(b), nil
		case "Fn::Not":
			if len(args) != 1 {
				return false, fmt.Errorf("Fn::Not wants 1 argument")
			}
			b, err := r.boolean(args[0])
			return !b, err
		case "Fn::And", "Fn::Or":
			and := fn == "Fn::And"
			for _, a := range args {
				b, err := r.boolean(a)
				if err != nil {
					return false, err
				}
				if b != and {
					return !and, nil
				}
			}
			return and, nil
		}
		return false, fmt.Errorf("%s is not a condition function", fn)
	}
	panic("unreachable")
}

var subVar = regexp.MustCompile(`\$\{([^}]+)\}`)

func (r *resolver) eval(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if isIntrinsic(x) {
			return r.intrinsic(x)
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			ev, err := r.eval(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if ev != noValue {
				out[k] = ev
			}
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(x))
		for i, e := range x {
			ev, err := r.eval(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			if ev != noValue {
				out = append(out, ev)
			}
		}
		return out, nil
	}
	return v, nil
}

func (r *resolver) intrinsic(m map[string]any) (any, error) {
	for fn, arg := range m {
		switch fn {
		case "Ref":
			name, _ := arg.(string)
			return r.ref(name)
		case "Fn::GetAtt":
			parts, _ := arg.([]any)
			if len(parts) != 2 {
				return nil, fmt.Errorf("Fn::GetAtt wants [Resource, Attribute]")
			}
			id := scalarString(parts[0])
			if _, ok := r.t.Resources[id]; !ok {
				return nil, fmt.Errorf("Fn::GetAtt: no resource %s", id)
			}
			return "${" + id + "." + scalarString(parts[1]) + "}", nil
		case "Fn::Sub":
			return r.sub(arg)
		case "Fn::If":
			args, _ := arg.([]any)
			if len(args) != 3 {
				return nil, fmt.Errorf("Fn::If wants 3 arguments")
			}
			ok, err := r.condition(scalarString(args[0]))
			if err != nil {
				return nil, err
			}
			if ok {
				return r.eval(args[1])
			}
			return r.eval(args[2])
		case "Fn::Join":
			args, _ := arg.([]any)
			if len(args) != 2 {
				return nil, fmt.Errorf("Fn::Join wants 2 arguments")
			}
			l, err := r.eval(args[1])
			if err != nil {
				return nil, err
			}
			items, ok := l.([]any)
			if !ok {
				return nil, fmt.Errorf("Fn::Join: second argument is not a list")
			}
			parts := make([]string, len(items))
			for i, it := range items {
				s, ok := it.(string)
				if !ok {
					return map[string]any{fn: []any{args[0], items}}, nil
				}
				parts[i] = s
			}
			return strings.Join(parts, scalarString(args[0])), nil
		case "Fn::Split":
			args, _ := arg.([]any)
			if len(args) != 2 {
				return nil, fmt.Errorf("Fn::Split wants 2 arguments")
			}
			s, err := r.eval(args[1])
			if err != nil {
				return nil, err
			}
			str, ok := s.(string)
			if !ok {
				return map[string]any{fn: []any{args[0], s}}, nil
			}
			var out []any
			for _, p := range strings.Split(str, scalarString(args[0])) {
				out = append(out, p)
			}
			return out, nil
		case "Fn::Select":
			args, _ := arg.([]any)
			if len(args) != 2 {
				return nil, fmt.Errorf("Fn::Select wants 2 arguments")
			}
			i, err := strconv.Atoi(scalarString(args[0]))
			if err != nil {
				return nil, fmt.Errorf("Fn::Select index: %w", err)
			}
			l, err := r.eval(args[1])
			if err != nil {
				return nil, err
			}
			items, _ := l.([]any)
			if i < 0 || i >= len(items) {
				return nil, fmt.Errorf("Fn::Select index %d out of range", i)
			}
			return items[i], nil
		case "Condition":
			return r.condition(scalarString(arg))
		}
		// Anything else is kept as written, arguments resolved.
		a, err := r.eval(arg)
		if err != nil {
			return nil, err
		}
		return map[string]any{fn: a}, nil
	}
	panic("unreachable")
}

func (r *resolver) ref(name string) (any, error) {
	if name == "AWS::NoValue" {
		return noValue, nil
	}
	if v, ok := pseudo[name]; ok {
		return v, nil
	}
	if _, ok := r.t.Parameters[name]; ok {
		v, ok := r.params[name]
		if !ok {
			return nil, fmt.Errorf("parameter %s has no value and no default", name)
		}
		return v, nil
	}
	if _, ok := r.t.Resources[name]; ok {
		return "${" + name + "}", nil
	}
	return nil, fmt.Errorf("Ref %s: no such parameter or resource", name)
}

func (r *resolver) sub(arg any) (any, error) {
	text, vars := "", map[string]any{}
	switch a := arg.(type) {
	case string:
		text = a
	case []any:
		if len(a) != 2 {
			return nil, fmt.Errorf("Fn::Sub wants a string or [string, variables]")
		}
		text = scalarString(a[0])
		vm, err := r.eval(a[1])
		if err != nil {
			return nil, err
		}
		vars = asMap(vm)
	default:
		return nil, fmt.Errorf("Fn::Sub wants a string or [string, variables]")
	}
	var failed error
	out := subVar.ReplaceAllStringFunc(text, func(m string) string {
		name := m[2 : len(m)-1]
		if strings.HasPrefix(name, "!") {
			return "${" + name[1:] + "}"
		}
		if v, ok := vars[name]; ok {
			return scalarString(v)
		}
		if v, ok := pseudo[name]; ok {
			return v
		}
		if v, ok := r.params[name]; ok {
			if _, isList := v.([]any); isList {
				failed = fmt.Errorf("Fn::Sub: list parameter %s cannot be substituted", name)
			}
			return scalarString(v)
		}
		id, _, _ := strings.Cut(name, ".")
		if _, ok := r.t.Resources[id]; ok {
			return m
		}
		failed = fmt.Errorf("Fn::Sub: ${%s} names nothing", name)
		return m
	})
	return out, failed
}

// scalarString renders a scalar as CloudFormation would see it.
func scalarString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = scalarString(e)
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}

func sortedStrings(s []string) []string {
	slices.Sort(s)
	return s
}

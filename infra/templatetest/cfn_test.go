package templatetest

import (
	"reflect"
	"testing"
)

// The reader and resolver are what every other test stands on, so they get
// tests of their own.

const sample = `
Parameters:
  Mode: {Type: String, Default: a}
  Names: {Type: CommaDelimitedList, Default: ""}
  Required: {Type: String}
Conditions:
  IsA: !Equals [!Ref Mode, a]
  NotA: !Not [!Condition IsA]
  HasNames: !Not [!Equals [!Join ["", !Ref Names], ""]]
  Both: !And [!Condition IsA, !Condition HasNames]
Resources:
  Q:
    Type: AWS::SQS::Queue
  OnlyB:
    Type: AWS::SQS::Queue
    Condition: NotA
  Thing:
    Type: Custom::Thing
    Properties:
      Ref: !Ref Q
      Arn: !GetAtt Q.Arn
      Nested: !GetAtt Q.Some.Attr
      Sub: !Sub "${Q.Arn}/m/* in ${AWS::Region} for ${Mode} ${!Literal}"
      SubVars: !Sub ["${X}-${Mode}", {X: !Ref Required}]
      Picked: !If [IsA, yes-a, !Ref AWS::NoValue]
      Dropped: !If [NotA, x, !Ref AWS::NoValue]
      List: [one, !If [NotA, two, !Ref AWS::NoValue], three]
      Names: !If [HasNames, !Ref Names, none]
      Split: !Split [",", "x,y"]
      Joined: !Join ["-", [a, b]]
      Selected: !Select [1, [p, q]]
      Kept: !Base64 text
`

func TestParseKeepsTagsInLongForm(t *testing.T) {
	t.Parallel()
	tpl, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	props := tpl.Resources["Thing"].Properties
	for key, want := range map[string]any{
		"Ref":    map[string]any{"Ref": "Q"},
		"Arn":    map[string]any{"Fn::GetAtt": []any{"Q", "Arn"}},
		"Nested": map[string]any{"Fn::GetAtt": []any{"Q", "Some.Attr"}},
		"Kept":   map[string]any{"Fn::Base64": "text"},
	} {
		if got := props[key]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", key, got, want)
		}
	}
	if got := tpl.Conditions["NotA"]; !reflect.DeepEqual(got, map[string]any{"Fn::Not": []any{map[string]any{"Condition": "IsA"}}}) {
		t.Errorf("NotA = %#v", got)
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	for name, text := range map[string]string{
		"unknown tag":   "Resources: {A: {Type: X, Properties: {P: !Bogus x}}}",
		"bad GetAtt":    "Resources: {A: {Type: X, Properties: {P: !GetAtt NoDot}}}",
		"duplicate key": "Resources:\n  A: {Type: X}\n  A: {Type: Y}\n",
		"no resources":  "Parameters: {}",
		"no type":       "Resources: {A: {Properties: {}}}",
	} {
		if _, err := Parse([]byte(text)); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	tpl, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	r, err := tpl.Resolve(map[string]string{"Required": "req"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Resources["OnlyB"]; ok {
		t.Error("resource with a false condition was kept")
	}
	props := r.Resources["Thing"].Properties
	want := map[string]any{
		"Ref":      "${Q}",
		"Arn":      "${Q.Arn}",
		"Nested":   "${Q.Some.Attr}",
		"Sub":      "${Q.Arn}/m/* in us-east-1 for a ${Literal}",
		"SubVars":  "req-a",
		"Picked":   "yes-a",
		"List":     []any{"one", "three"},
		"Names":    "none",
		"Split":    []any{"x", "y"},
		"Joined":   "a-b",
		"Selected": "q",
		"Kept":     map[string]any{"Fn::Base64": "text"},
	}
	if !reflect.DeepEqual(props, want) {
		t.Errorf("resolved properties:\n got %#v\nwant %#v", props, want)
	}

	r, err = tpl.Resolve(map[string]string{"Required": "req", "Mode": "b", "Names": "n1,n2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Resources["OnlyB"]; !ok {
		t.Error("resource with a true condition was dropped")
	}
	props = r.Resources["Thing"].Properties
	if _, ok := props["Picked"]; ok {
		t.Error("AWS::NoValue did not remove the key")
	}
	if got := props["Names"]; !reflect.DeepEqual(got, []any{"n1", "n2"}) {
		t.Errorf("list parameter = %#v", got)
	}
	if !r.Conditions["HasNames"] || r.Conditions["Both"] {
		t.Errorf("conditions = %v", r.Conditions)
	}

	if _, err := tpl.Resolve(nil); err == nil {
		t.Error("a parameter without default or value resolved")
	}
	if _, err := tpl.Resolve(map[string]string{"Required": "x", "Nope": "y"}); err == nil {
		t.Error("an unknown parameter was accepted")
	}
}

func TestMergeGlobals(t *testing.T) {
	t.Parallel()
	got := mergeGlobals(
		map[string]any{"Timeout": 3, "Environment": map[string]any{"Variables": map[string]any{"A": "g", "B": "g"}}},
		map[string]any{"Timeout": 9, "Environment": map[string]any{"Variables": map[string]any{"B": "f"}}},
	)
	want := map[string]any{"Timeout": 9, "Environment": map[string]any{"Variables": map[string]any{"A": "g", "B": "f"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merge = %#v, want %#v", got, want)
	}
}

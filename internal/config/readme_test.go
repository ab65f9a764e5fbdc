package config

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// readmeKeys returns the keys README.md's configuration tables document:
// the table of the Configuration section, with full paths, and the table of
// "The Postern side", whose relay keys are a route's. A first cell may name
// several keys: `a.b`, `.c` (a sibling of a.b) and, in parentheses, the
// keys inside the one before them (`routes[].relay.oauth` (`provider: entra`,
// `tenant`)).
func readmeKeys(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	inTable := false
	for line := range strings.SplitSeq(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "| key |"):
			inTable = true
			continue
		case !strings.HasPrefix(line, "|"):
			inTable = false
			continue
		case !inTable || strings.HasPrefix(line, "|---"):
			continue
		}
		cell := strings.Split(line, "|")[1]
		var full string // the last whole key outside parentheses
		depth := 0
		for i := 0; i < len(cell); i++ {
			switch cell[i] {
			case '(':
				depth++
			case ')':
				depth--
			case '`':
				end := strings.IndexByte(cell[i+1:], '`')
				if end < 0 {
					t.Fatalf("README: unclosed backtick in %q", line)
				}
				tok := cell[i+1 : i+1+end]
				i += end + 1
				tok, _, _ = strings.Cut(tok, ":") // `provider: entra` names provider
				tok = strings.TrimSpace(tok)
				var key string
				switch {
				case depth > 0:
					key = full + "." + strings.TrimPrefix(tok, ".")
				case strings.HasPrefix(tok, "."):
					key = full[:strings.LastIndexByte(full, '.')] + tok
				default:
					key, full = tok, tok
				}
				if strings.HasPrefix(key, "relay.") { // The Postern side: a route's relay
					key = "routes[]." + key
				}
				keys[key] = true
			}
		}
	}
	if len(keys) < 50 {
		t.Fatalf("found only %d keys in README's tables: is the parser still right? %v", len(keys), keys)
	}
	return keys
}

// schemaKeys returns every key config.Config decodes (its yaml tags, "[]"
// after a list of objects), and which of them hold a value rather than
// further keys.
func schemaKeys() (all, leaves map[string]bool) {
	all, leaves = map[string]bool{}, map[string]bool{}
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			key := prefix + name
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
				key += "[]"
				ft = ft.Elem()
			}
			all[key] = true
			if ft.Kind() == reflect.Struct {
				walk(key+".", ft)
			} else {
				leaves[key] = true
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
	return all, leaves
}

// Keys documented by reference rather than one by one, each with where.
var readmeAliases = map[string]string{
	"dsn.relay.": "routes[].relay.", // dsn.relay: "same keys as a route's relay"
}

// README's configuration tables and the configuration the gateway decodes
// name the same keys: none undocumented, none documented that does not
// exist (an unknown key is an error at start, so a stale row misleads).
func TestReadmeDocumentsEveryConfigKey(t *testing.T) {
	t.Parallel()
	doc := readmeKeys(t)
	all, leaves := schemaKeys()
	var missing, stale []string
	for k := range leaves {
		d := k
		for from, to := range readmeAliases {
			if strings.HasPrefix(k, from) {
				d = to + strings.TrimPrefix(k, from)
			}
		}
		if !doc[k] && !doc[d] {
			missing = append(missing, k)
		}
	}
	for k := range doc {
		if !all[k] {
			stale = append(stale, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	if len(missing) > 0 {
		t.Errorf("README.md's configuration table lacks %d key(s) the gateway takes; add a row for each:\n  %s", len(missing), strings.Join(missing, "\n  "))
	}
	if len(stale) > 0 {
		t.Errorf("README.md documents %d key(s) the gateway does not take (an error at start); fix or remove:\n  %s", len(stale), strings.Join(stale, "\n  "))
	}
}

// The parser of the tables reads the forms the README uses.
func TestReadmeKeyParser(t *testing.T) {
	t.Parallel()
	doc := readmeKeys(t)
	for _, k := range []string{
		"tls.key_file",                       // `tls.cert_file`, `tls.key_file`
		"identities[].password_hash",         // `identities[].username` / `.password_hash`
		"routes[].relay.oauth.tenant",        // in parentheses after `routes[].relay.oauth`
		"routes[].relay.oauth.provider",      // `provider: entra`
		"dkim.keys[].selector",               // `dkim.keys[]` (`domain`, `selector`, `key`)
		"routes[].relay.oauth.client_secret", // The Postern side's `relay.oauth.client_secret`
		"limits.max_sessions_per_ip",         // `limits.max_sessions` / `limits.max_sessions_per_ip`
		"backend.aws.queues.dsn",             // `.dsn` after `backend.aws.queues.inbound`
		"routes[].relay.save_to_sent_items",  // a list of siblings
		"identities[].refuse_undeliverable_senders",
	} {
		if !doc[k] {
			t.Errorf("parsed README lacks %s", k)
		}
	}
	_, leaves := schemaKeys()
	for _, k := range []string{"routes[].webhook.allow", "dkim.keys[].key", "backend.aws.dead_letter.relay", "dsn.relay.oauth.scope"} {
		if !leaves[k] {
			t.Errorf("schema lacks %s; keys: %v", k, slices.Sorted(func(yield func(string) bool) {
				for k := range leaves {
					if !yield(k) {
						return
					}
				}
			}))
		}
	}
}

// logLineRe finds the log messages README names as such: "the log line
// `x`", "logs `x`", "logs one `x` line", "`x` lines", "the last log line is
// `x`", "logged at WARN (`x`", "the line `x`".
var logLineRe = regexp.MustCompile("(?i)(?:log line(?: is)?|logs(?: one)?|logged at [a-z]+ \\(|the line)\\s+`([^`]+)`|`([^`]+)`\\s+(?:log )?lines?\\b")

// Every log message README names exists in the code, so an operator who
// searches the logs for it can find it.
func TestReadmeLogLinesExist(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// Paragraphs wrap, so a phrase may span lines.
	readme := strings.Join(strings.Fields(string(b)), " ")
	var named []string
	for _, m := range logLineRe.FindAllStringSubmatch(readme, -1) {
		named = append(named, m[1]+m[2])
	}
	if len(named) < 3 {
		t.Fatalf("README names only %d log lines (%v): is the pattern still right?", len(named), named)
	}
	literals := goStringLiterals(t, "../..")
	for _, msg := range named {
		if !literals[msg] {
			t.Errorf("README names the log line %q, which no Go source logs (no string literal %q outside tests)", msg, msg)
		}
	}
}

// goStringLiterals returns the double-quoted string literals of the
// repository's Go sources, tests left out.
func goStringLiterals(t *testing.T, root string) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"((?:[^"\\\n]|\\.)*)"`)
	out := map[string]bool{}
	var walk func(dir string)
	walk = func(dir string) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			name := e.Name()
			p := dir + "/" + name
			switch {
			case e.IsDir() && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules"):
			case e.IsDir():
				walk(p)
			case strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go"):
				src, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range lit.FindAllStringSubmatch(string(src), -1) {
					out[m[1]] = true
				}
			}
		}
	}
	walk(root)
	return out
}

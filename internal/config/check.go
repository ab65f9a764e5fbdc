package config

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"regexp"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// MinBcryptCost is the lowest bcrypt cost a password hash may have: at 10
// a guess costs about 50 ms on a server CPU; `gateway hash-password` uses
// 12.
const MinBcryptCost = 10

// MinSecretBytes is the least entropy, in bytes, check-config accepts in
// a webhook signing secret or the admin token: 128 bits, what HMAC-SHA256
// keys and bearer tokens need to be beyond guessing.
const MinSecretBytes = 16

// bcryptHash is the whole form of a bcrypt hash: version, two-digit cost,
// then 22 characters of salt and 31 of hash in bcrypt's base64.
var bcryptHash = regexp.MustCompile(`^\$2[aby]?\$[0-9]{2}\$[./A-Za-z0-9]{53}$`)

// checkBcryptHash says what is wrong with a password_hash an identity
// could never log in with; nil when it is a well-formed bcrypt hash.
func checkBcryptHash(h string) error {
	if !strings.HasPrefix(h, "$2") {
		return errors.New("is not a bcrypt hash")
	}
	if !bcryptHash.MatchString(h) {
		return errors.New("is not a whole bcrypt hash (60 characters, $2a$ or $2b$ or $2y$, the cost, then salt and hash): it may be cut short or hold a quote or space, so nobody could log in with it")
	}
	if _, err := bcrypt.Cost([]byte(h)); err != nil {
		return fmt.Errorf("is not a usable bcrypt hash (%v), so nobody could log in with it", err)
	}
	return nil
}

// checkStrength refuses what is well-formed but weak, at start and in
// check-config: password hashes of a bcrypt cost under MinBcryptCost.
// (Secrets are resolved later, where they are used; check-config measures
// them in CheckSecrets.)
func (c *Config) checkStrength() error {
	var errs []error
	for i, id := range c.Identities {
		if id.PasswordHash == "" || isLocalRef(id.PasswordHash) || checkBcryptHash(id.PasswordHash) != nil {
			continue // Validate reported it, or it is read where it is used
		}
		if err := checkBcryptCost(id.PasswordHash); err != nil {
			errs = append(errs, fmt.Errorf("config: identities[%d].password_hash: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// checkBcryptCost refuses a well-formed hash of a cost under MinBcryptCost.
func checkBcryptCost(h string) error {
	if cost, _ := bcrypt.Cost([]byte(h)); cost < MinBcryptCost {
		return fmt.Errorf("bcrypt cost %d is under %d, so whoever reads it can guess the password quickly; make a new hash with `gateway hash-password` (cost 12)", cost, MinBcryptCost)
	}
	return nil
}

// isLocalRef reports whether s names where a value is read from on one
// machine ("env:NAME", "file:PATH") instead of being the value.
func isLocalRef(s string) bool { return strings.HasPrefix(s, "env:") || strings.HasPrefix(s, "file:") }

// ResolvedPasswordHash is the identity's bcrypt hash, read from the
// environment or a file when PasswordHash names one there, and checked as
// a hash written in the file is: whole, and of cost MinBcryptCost or more.
// getenv reads env: references. The hash never appears in errors.
func (id *Identity) ResolvedPasswordHash(getenv func(string) string) (string, error) {
	if !isLocalRef(id.PasswordHash) {
		return id.PasswordHash, nil
	}
	h, err := resolveSecret(id.PasswordHash, getenv)
	if err != nil {
		return "", err
	}
	if err := checkBcryptHash(h); err != nil {
		return "", fmt.Errorf("%s: %w; make one with `gateway hash-password`", id.PasswordHash, err)
	}
	if err := checkBcryptCost(h); err != nil {
		return "", fmt.Errorf("%s: %w", id.PasswordHash, err)
	}
	return h, nil
}

// Check is what `gateway check-config` runs, so that it cannot say OK for
// a file the gateway would refuse or that is unsafe: the file is decoded
// (every unknown key and wrong value by its key path), the environment
// overrides applied, then Validate, the strength rules and CheckSecrets
// all run, and every problem of every step comes back at once. cfg is nil
// only when the file cannot be read. notes says what could not be checked
// here (secretsmanager: references) and what is allowed but unwise
// (allow_private).
func Check(path string, getenv func(string) string, dec SecretDecoders) (cfg *Config, notes []string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	c := Default()
	var errs []error
	errs = append(errs, decodeInto(c, path, b, false))
	errs = append(errs, c.applyEnv(getenv))
	errs = append(errs, c.Validate())
	errs = append(errs, c.checkStrength())
	notes, err = c.CheckSecrets(getenv, dec)
	errs = append(errs, err)
	for i, r := range c.Routes {
		if r.Webhook != nil && r.Webhook.AllowPrivate {
			notes = append(notes, fmt.Sprintf("routes[%d].webhook.allow_private: true lets this route reach every loopback, private and shared address, the admin API's included; list only the application's address or name in routes[%d].webhook.allow instead", i, i))
		}
	}
	return c, notes, errors.Join(errs...)
}

// SecretDecoders read secrets as the stages that use them do, so that
// check-config refuses what they would refuse; config itself does not
// import the stages. A nil decoder skips its kind.
type SecretDecoders struct {
	WebhookKey        func(text string) ([]byte, error) // webhook.ParseSecret
	Certificate       func(pem []byte) error            // relay oauth.certificate (Entra)
	ServiceAccountKey func(json []byte) error           // relay oauth.service_account_key (Google)
	DKIMKey           func(pem []byte) error            // dkim.keys[].key
}

// CheckSecrets reads every secret written as a literal, env:NAME or
// file:PATH, as the stages will: an unset variable or a missing, unreadable
// or empty file is an error naming the key. Each is decoded as its stage
// does (dec), and webhook secrets and admin.token must hold MinSecretBytes
// of entropy (see secretBytes). secretsmanager: references cannot be read
// offline: on AWS each gets a note instead, never a silent pass. No error
// or note holds a secret's value.
func (c *Config) CheckSecrets(getenv func(string) string, dec SecretDecoders) (notes []string, err error) {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...)))
	}
	// read returns the secret's text, or ok false after reporting or
	// noting why there is none to check.
	read := func(key, ref string) (string, bool) {
		if id, ok := SecretsManagerID(ref); ok {
			if c.Backend.Type != "aws" {
				return "", false // Validate reported that only the AWS functions read it
			}
			notes = append(notes, fmt.Sprintf("%s: secretsmanager:%s is read at run time by the AWS functions, not checked here; check it with `aws secretsmanager describe-secret --secret-id %s` or `gateway check-config -probe`", key, id, id))
			return "", false
		}
		if CheckSecretRef(ref) != nil {
			return "", false // Validate reported it
		}
		text, err := resolveSecret(ref, getenv)
		if err != nil {
			bad(key, "%v", err)
			return "", false
		}
		return text, true
	}
	weak := func(key string, n float64, fix string) {
		bad(key, "holds about %d bytes of entropy, under %d (random bytes count as they are; other text by its length and the kinds of characters in it); %s",
			int(n), MinSecretBytes, fix)
	}
	for i, id := range c.Identities {
		if isLocalRef(id.PasswordHash) && c.Backend.Type != "aws" && CheckSecretRef(id.PasswordHash) == nil {
			if _, err := id.ResolvedPasswordHash(getenv); err != nil {
				bad(fmt.Sprintf("identities[%d].password_hash", i), "%v", err)
			}
		}
	}
	if c.Admin.Token != "" {
		if text, ok := read("admin.token", c.Admin.Token); ok {
			if n := secretBytes(text); n < MinSecretBytes {
				weak("admin.token", n, "make one with `openssl rand -hex 32`")
			}
		}
	}
	relay := func(key string, r *Relay) {
		if r.Password != "" {
			read(key+".password", r.Password)
		}
		if r.OAuth == nil {
			return
		}
		for _, s := range []struct {
			name, ref string
			decode    func([]byte) error
		}{
			{"client_secret", r.OAuth.ClientSecret, nil},
			{"certificate", r.OAuth.Certificate, dec.Certificate},
			{"service_account_key", r.OAuth.ServiceAccountKey, dec.ServiceAccountKey},
		} {
			if s.ref == "" {
				continue
			}
			if text, ok := read(key+".oauth."+s.name, s.ref); ok && s.decode != nil {
				if err := s.decode([]byte(text)); err != nil {
					bad(key+".oauth."+s.name, "%v", err)
				}
			}
		}
	}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if r.Relay != nil {
			relay(key+".relay", r.Relay)
		}
		if r.Webhook == nil {
			continue
		}
		for j, ref := range r.Webhook.Secrets {
			k := fmt.Sprintf("%s.webhook.secrets[%d]", key, j)
			text, ok := read(k, ref)
			if !ok {
				continue
			}
			n := secretBytes(text)
			if dec.WebhookKey != nil {
				raw, err := dec.WebhookKey(text)
				if err != nil {
					bad(k, "%v; write whsec_ and the key in standard base64, or the secret as plain text", err)
					continue
				}
				if strings.HasPrefix(text, "whsec_") {
					n = float64(len(raw)) // the form generators use for random keys
				}
			}
			if n < MinSecretBytes {
				weak(k, n, "make one with `echo whsec_$(openssl rand -base64 32)` and give it to the application too")
			}
		}
	}
	relay("dsn.relay", &c.DSN.Relay)
	for i, k := range c.DKIM.Keys {
		key := fmt.Sprintf("dkim.keys[%d].key", i)
		if text, ok := read(key, k.Key); ok && dec.DKIMKey != nil {
			if err := dec.DKIMKey([]byte(text)); err != nil {
				bad(key, "%v", err)
			}
		}
	}
	return notes, errors.Join(errs...)
}

// secretBytes estimates the entropy of a secret in bytes, the fair measure
// for secrets people paste from generators: hex text (dashes allowed, as in
// a UUID) counts half a byte per digit, its decoded length; any other text
// counts log2 of the alphabet of the character classes it uses (26 lower,
// 26 upper, 10 digits, 33 other) per character, with a run of one
// repeated character counted once. Random base64 comes out near its
// decoded length. Text of fewer than 8 distinct characters ("abababab")
// counts log2 of that number per character instead: random text of any
// length worth having uses more.
func secretBytes(s string) float64 {
	distinct := map[rune]bool{}
	for _, r := range s {
		distinct[r] = true
	}
	if len(distinct) < 8 {
		if len(distinct) < 2 {
			return 0
		}
		return float64(len([]rune(s))) * math.Log2(float64(len(distinct))) / 8
	}
	if h := strings.ReplaceAll(s, "-", ""); isHex(h) {
		return float64(len(h)) / 2
	}
	var lower, upper, digit, other bool
	n := 0
	var prev rune = -1
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= '0' && r <= '9':
			digit = true
		default:
			other = true
		}
		if r != prev {
			n++
		}
		prev = r
	}
	pool := 0
	for _, c := range []struct {
		used bool
		size int
	}{{lower, 26}, {upper, 26}, {digit, 10}, {other, 33}} {
		if c.used {
			pool += c.size
		}
	}
	if pool < 2 {
		return 0
	}
	return float64(n) * math.Log2(float64(pool)) / 8
}

func isHex(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}

// RedactURL returns u without what may be a credential: the user and
// password, the query and the fragment; "?…" marks a query that was cut.
// Text that does not parse as a URL gives only its scheme, if any.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Opaque != "" {
		if scheme, _, ok := strings.Cut(u, "://"); ok && !strings.ContainsAny(scheme, "/?@") {
			return scheme + "://(unreadable URL)"
		}
		return "(unreadable URL)"
	}
	out := url.URL{Scheme: p.Scheme, Host: p.Host, Path: p.Path, RawPath: p.RawPath}
	s := out.String()
	if p.RawQuery != "" || p.ForceQuery {
		s += "?…"
	}
	return s
}

// resolveSecret is ResolveSecret with getenv for env: references.
func resolveSecret(s string, getenv func(string) string) (string, error) {
	name, ok := strings.CutPrefix(s, "env:")
	if !ok {
		return ResolveSecret(s)
	}
	v := ""
	if getenv != nil {
		v = getenv(name)
	}
	if v == "" {
		return "", fmt.Errorf("environment variable %s is not set; export it or write the secret another way", name)
	}
	return v, nil
}

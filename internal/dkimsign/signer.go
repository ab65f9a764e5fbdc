// Package dkimsign puts DKIM signatures (RFC 6376; RSA-SHA256 and
// Ed25519-SHA256, relaxed/relaxed) on mail Postern sends: a Signer holds the
// keys per domain and selector, WrapTransport signs what a relay sends.
package dkimsign

import (
	"bufio"
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"golang.org/x/net/idna"
	"golang.org/x/text/encoding/htmlindex"

	"github.com/postern/postern/internal/crlf"
	"github.com/postern/postern/internal/mailheader"
)

// signedHeaders are the fields a signature covers, in h= order, each as
// often as the message has it: those a reader sees or that change how the
// body reads (RFC 6376 section 5.4.1). A field the message lacks is left
// out of h=, since a name in h= with no field seals its absence and the next
// hop commonly adds a missing Date or Message-ID, which would break the
// signature. From alone is named once more than it occurs (over-signing,
// RFC 6376 section 8.15): a From added later, the one a mail client might
// show, breaks the signature.
var signedHeaders = []string{
	"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "In-Reply-To", "References",
}

// headerKeys is the h= list for a header with fields fs.
func headerKeys(fs []mailheader.Field) []string {
	var keys []string
	for _, name := range signedHeaders {
		for _, f := range fs {
			if strings.EqualFold(f.Name, name) {
				keys = append(keys, name)
			}
		}
	}
	return append(keys, "From")
}

// MaxHeaderBytes bounds the header block read into memory to find From,
// as internal/relay/sendas bounds its own; a larger header goes unsigned.
const MaxHeaderBytes = 4 << 20

// DefaultMemoryLimit is how much of a message Sign keeps in memory before
// it spools the rest to a file.
const DefaultMemoryLimit = 8 << 20

// Selector is one key, published at SELECTOR._domainkey.DOMAIN.
type Selector struct {
	Domain   string // the d= tag: From's domain or a parent of it
	Selector string // the s= tag
	Key      *Key
}

// Options tune a Signer; the zero value is ready to use.
type Options struct {
	// Expiry, when above 0, adds x= (signing time + Expiry). Off by default:
	// a verifier rechecking stored mail later would call it failed, and
	// every try of a relay signs afresh with its own t= anyway.
	Expiry time.Duration
	// MemoryLimit is how many bytes of a message are kept in memory while
	// it is signed; the rest goes to a temporary file in SpoolDir. 0 means
	// DefaultMemoryLimit; a negative value spools every message.
	MemoryLimit int64
	// SpoolDir is where that file goes; "" is os.TempDir() (/tmp on Lambda).
	SpoolDir string
	// Logger gets a line per message WrapTransport sends: the signing
	// domain and selectors, or why it went unsigned; never an address.
	// nil logs nothing.
	Logger *slog.Logger
}

// Signer signs messages with the keys of the domain their From names. It
// is safe for concurrent use.
type Signer struct {
	byDomain map[string][]Selector // normalised domain -> its keys, in the order given
	opts     Options
}

// NewSigner returns a Signer for sels. A domain may have several
// selectors (an RSA and an Ed25519 key, or two keys while one is being
// rotated out): each adds its own signature, in the order given.
func NewSigner(sels []Selector, opts Options) (*Signer, error) {
	s := &Signer{byDomain: map[string][]Selector{}, opts: opts}
	if s.opts.MemoryLimit == 0 {
		s.opts.MemoryLimit = DefaultMemoryLimit
	}
	for i, sel := range sels {
		if err := CheckSelector(sel.Domain, sel.Selector); err != nil {
			return nil, fmt.Errorf("dkim selector %d: %w", i, err)
		}
		d, _ := normDomain(sel.Domain)
		if sel.Key == nil {
			return nil, fmt.Errorf("dkim selector %d (%s._domainkey.%s): no key", i, sel.Selector, d)
		}
		for _, o := range s.byDomain[d] {
			if strings.EqualFold(o.Selector, sel.Selector) {
				return nil, fmt.Errorf("dkim selector %s._domainkey.%s is given twice", sel.Selector, d)
			}
		}
		sel.Domain, sel.Selector = d, strings.ToLower(sel.Selector)
		s.byDomain[d] = append(s.byDomain[d], sel)
	}
	return s, nil
}

// CheckSelector reports whether domain and selector can name a key record,
// SELECTOR._domainkey.DOMAIN: a fully qualified domain (IDNs are fine)
// and a selector of DNS labels.
func CheckSelector(domain, selector string) error {
	if _, err := normDomain(domain); err != nil {
		return fmt.Errorf("domain %q: %w", domain, err)
	}
	if !validSelector(selector) {
		return fmt.Errorf("selector %q: want DNS labels of letters, digits and '-', joined by '.'", selector)
	}
	return nil
}

// Why a message went out unsigned (Signed.Unsigned).
const (
	NoFrom          = "no From field"
	ManyFrom        = "more than one From field"
	BadFrom         = "From does not parse as addresses"
	ManyDomains     = "From names more than one domain"
	NoKey           = "no key for the From domain"
	HeaderTooLarge  = "header over the size limit"
	FoldedFirstLine = "the header starts with a folded line"
)

// Signed is a message as it is to be sent: its DKIM-Signature fields, then
// the message with CRLF line ends. Read it once, then Close it.
type Signed struct {
	// Domain is the d= of the signatures; "" when the message is not
	// signed, and Unsigned says why.
	Domain    string
	Selectors []string
	Unsigned  string
	// Size is the number of bytes Read yields, or -1 when unsigned (the
	// message then streams through and its size is not known here).
	Size int64

	r     io.Reader
	spool *spool
}

func (m *Signed) Read(p []byte) (int, error) { return m.r.Read(p) }

// Close releases the memory or file that held the message.
func (m *Signed) Close() error {
	if m.spool != nil {
		return m.spool.Close()
	}
	return nil
}

// Sign reads the message from r and returns it signed with the keys of its
// From domain: the domain of the single From field (every address in it
// sharing one), else the nearest parent domain that has keys, since DMARC
// only passes on DKIM when d= aligns with From (a parent aligns in relaxed
// mode, the default; strict mode needs a key for the exact domain). A
// message without such a domain or key comes back unsigned, never refused:
// it still goes out, as it would have without signing.
//
// The signature must come before the message, and it covers the body, so
// the whole message is read before the first byte can be returned: it is
// kept in memory up to Options.MemoryLimit and in a temporary file beyond.
// What is signed is what crlf.NewReader makes of r (CRLF line ends), the
// bytes a relay transport sends, so a verifier at the next hop hashes the
// same bytes. An error is a fault reading r or spooling; nothing is
// returned then.
func (s *Signer) Sign(r io.Reader) (*Signed, error) { return s.sign(r, 0) }

// sign is Sign with the message's size when known (else 0), so memory for
// it is taken once rather than grown by doubling.
func (s *Signer) sign(r io.Reader, sizeHint int64) (*Signed, error) {
	br := bufio.NewReaderSize(crlf.NewReader(r), 32<<10)
	header, complete, err := readHeader(br)
	if err != nil {
		return nil, err
	}
	if !complete && int64(len(header)) > MaxHeaderBytes {
		return &Signed{Unsigned: HeaderTooLarge, Size: -1, r: io.MultiReader(bytes.NewReader(header), br)}, nil
	}
	domain, why := s.fromDomain(header)
	if len(header) > 0 && (header[0] == ' ' || header[0] == '\t') {
		// A folded first line would continue the field put above it, our
		// signature, and break it.
		domain, why = "", FoldedFirstLine
	}
	if why != "" {
		return &Signed{Unsigned: why, Size: -1, r: io.MultiReader(bytes.NewReader(header), br)}, nil
	}
	if !complete {
		// Header to the end with no empty line: end it, so there is an
		// (empty) body to sign and to verify.
		if len(header) > 0 && !bytes.HasSuffix(header, []byte("\r\n")) {
			header = append(header, "\r\n"...)
		}
		header = append(header, "\r\n"...)
	}
	sels := s.byDomain[domain]
	keys := headerKeys(mailheader.Fields(header))
	now := time.Now()
	signers := make([]*dkim.Signer, 0, len(sels))
	defer func() {
		for _, sg := range signers {
			sg.Close() // ends its goroutine; a no-op after a successful Close
		}
	}()
	for _, sel := range sels {
		o := &dkim.SignOptions{
			Domain:                 sel.Domain,
			Selector:               sel.Selector,
			Signer:                 sel.Key.signer,
			Hash:                   crypto.SHA256,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             keys,
		}
		if s.opts.Expiry > 0 {
			o.Expiration = now.Add(s.opts.Expiry)
		}
		sg, err := dkim.NewSigner(o)
		if err != nil {
			return nil, fmt.Errorf("dkim sign %s._domainkey.%s: %w", sel.Selector, sel.Domain, err)
		}
		signers = append(signers, sg)
	}

	sp := &spool{limit: s.opts.MemoryLimit, dir: s.opts.SpoolDir}
	switch {
	case sizeHint > s.opts.MemoryLimit:
		sp.limit = -1 // bound for the file: skip filling memory first
	case sizeHint > 0:
		// Line ends may grow (LF to CRLF): a little room for that.
		sp.mem.Grow(int(min(sizeHint+sizeHint/32+4<<10, s.opts.MemoryLimit)))
	}
	ws := make([]io.Writer, 0, len(signers)+1)
	ws = append(ws, sp)
	for _, sg := range signers {
		ws = append(ws, sg)
	}
	w := fanOut(ws)
	if _, err := w.Write(header); err != nil {
		sp.Close()
		return nil, err
	}
	if _, err := br.WriteTo(w); err != nil {
		sp.Close()
		return nil, fmt.Errorf("dkim sign: read message: %w", err)
	}
	var fields []byte
	names := make([]string, len(sels))
	for i, sg := range signers {
		if err := sg.Close(); err != nil {
			sp.Close()
			return nil, fmt.Errorf("dkim sign %s._domainkey.%s: %w", sels[i].Selector, domain, err)
		}
		fields = append(fields, sg.Signature()...)
		names[i] = sels[i].Selector
	}
	body, err := sp.Reader()
	if err != nil {
		sp.Close()
		return nil, err
	}
	return &Signed{
		Domain: domain, Selectors: names, Size: int64(len(fields)) + sp.Len(),
		r: io.MultiReader(bytes.NewReader(fields), body), spool: sp,
	}, nil
}

// readHeader reads CRLF text from br up to and including the empty line
// that ends the header. complete is false when the input ended first or
// the header passed MaxHeaderBytes; header then holds what was read.
func readHeader(br *bufio.Reader) (header []byte, complete bool, err error) {
	for {
		line, err := br.ReadSlice('\n')
		header = append(header, line...)
		switch {
		case err == nil && string(line) == "\r\n" && (len(header) == 2 || bytes.HasSuffix(header[:len(header)-2], []byte("\n"))):
			return header, true, nil
		case err == io.EOF:
			return header, false, nil
		case err != nil && !errors.Is(err, bufio.ErrBufferFull):
			return nil, false, fmt.Errorf("dkim sign: read message: %w", err)
		}
		if len(header) > MaxHeaderBytes {
			return header, false, nil
		}
	}
}

// fromDomain finds the domain whose keys sign header, or why none does.
func (s *Signer) fromDomain(header []byte) (domain, why string) {
	var from []string
	for _, f := range mailheader.Fields(header) {
		if strings.EqualFold(f.Name, "From") {
			from = append(from, f.Value)
		}
	}
	switch len(from) {
	case 0:
		return "", NoFrom
	case 1:
	default:
		// DMARC cannot judge such a message (RFC 7489 section 6.6.1);
		// receivers mostly refuse it, signed or not.
		return "", ManyFrom
	}
	addrs, err := addressParser.ParseList(from[0])
	if err != nil {
		addrs, err = rawNameParser.ParseList(from[0])
	}
	if err != nil || len(addrs) == 0 {
		return "", BadFrom
	}
	for _, a := range addrs {
		at := strings.LastIndexByte(a.Address, '@')
		d, err := normDomain(a.Address[at+1:])
		if at < 0 || err != nil {
			return "", BadFrom
		}
		if domain != "" && d != domain {
			return "", ManyDomains
		}
		domain = d
	}
	for d := domain; ; {
		if _, ok := s.byDomain[d]; ok {
			return d, ""
		}
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return "", NoKey
		}
		d = d[i+1:]
	}
}

// addressParser reads display names in any charset mail clients use, so a
// From with an unusual one still yields its domain.
var addressParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{CharsetReader: func(charset string, in io.Reader) (io.Reader, error) {
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return nil, fmt.Errorf("charset %q: %w", charset, err)
	}
	return enc.NewDecoder().Reader(in), nil
}}}

// rawNameParser is for a display name in a charset nobody knows: the
// address is all that is needed, so the name's bytes are taken as they are.
var rawNameParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{CharsetReader: func(_ string, in io.Reader) (io.Reader, error) {
	return in, nil
}}}

// normDomain is a domain as keys are looked up: A-labels, lower case, no
// trailing dot.
func normDomain(d string) (string, error) {
	d = strings.TrimSuffix(d, ".")
	a, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", errors.New("not a valid domain name")
	}
	if a == "" || !strings.Contains(a, ".") {
		return "", errors.New("not a fully qualified domain name")
	}
	return strings.ToLower(a), nil
}

// validSelector: RFC 6376 section 3.1, selector = sub-domain *("." sub-domain).
func validSelector(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	return !slices.ContainsFunc(strings.Split(s, "."), func(l string) bool {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return true
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return true
			}
		}
		return false
	})
}

// fanOut writes each chunk to every writer at once, each in its own
// goroutine: each signature hashes the whole body, and with two keys (RSA
// and Ed25519) this halves the time on two CPUs. Writers must not keep p.
func fanOut(ws []io.Writer) io.Writer {
	if len(ws) == 1 {
		return ws[0]
	}
	return parallelWriter(ws)
}

type parallelWriter []io.Writer

func (pw parallelWriter) Write(p []byte) (int, error) {
	errs := make([]error, len(pw))
	var wg sync.WaitGroup
	for i, w := range pw[1:] {
		wg.Go(func() {
			_, errs[i+1] = w.Write(p)
		})
	}
	_, errs[0] = pw[0].Write(p)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return len(p), nil
}

package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCheckInterval is how often, at most, a handshake looks at the
// certificate files for changes.
const DefaultCheckInterval = 10 * time.Second

// renewBefore is how long before expiry a self-signed certificate is
// replaced, and how long a certificate from files may have left before the
// gateway starts warning.
const renewBefore = 30 * 24 * time.Hour

// Options says where the gateway's certificate comes from.
type Options struct {
	// CertFile and KeyFile are PEM files: the certificate (leaf first, then
	// intermediates) and its private key. Set both, or neither for a
	// self-signed certificate.
	CertFile, KeyFile string
	// MinVersion is the default for Config when it is given "": "1.0",
	// "1.1", "1.2" (the default) or "1.3".
	MinVersion string
	// Hostname goes into the self-signed certificate beside "localhost",
	// 127.0.0.1 and ::1. It may be an IP address.
	Hostname string
	// SelfSignedDir keeps a generated certificate and key so restarts reuse
	// them and devices that pinned the certificate keep working; "" keeps
	// them in memory only, so every start makes a new one.
	SelfSignedDir string
	// CheckInterval bounds how often handshakes check the certificate files
	// for changes; 0 means DefaultCheckInterval.
	CheckInterval time.Duration
	// Log receives load, reload and warning events; nil discards them.
	Log *slog.Logger
}

// Manager serves the current certificate to TLS handshakes and swaps it when
// the files change, without a restart. A failed reload keeps the previous
// certificate, so a half-written renewal never takes the front door down.
type Manager struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration

	cur       atomic.Pointer[tls.Certificate]
	nextCheck atomic.Int64 // Unix nanoseconds before which handshakes skip the check

	mu     sync.Mutex // serialises reloads
	stamps stamps     // files as last read, guarded by mu

	warnMu sync.Mutex
	warned map[uint16]bool // legacy versions already warned about
}

// New loads the certificate named in opts, or makes a self-signed one when
// no files are named. Errors name the file or key at fault and the fix.
func New(opts Options) (*Manager, error) {
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, fmt.Errorf("tls: cert_file and key_file must be set together: both for your own certificate, neither for a self-signed one (cert_file=%q, key_file=%q)", opts.CertFile, opts.KeyFile)
	}
	if _, err := TLSVersion(opts.MinVersion); err != nil {
		return nil, err
	}
	if opts.CheckInterval < 0 {
		return nil, fmt.Errorf("tls: check interval %s is negative; use 0 for the default of %s", opts.CheckInterval, DefaultCheckInterval)
	}
	m := &Manager{
		opts:     opts,
		log:      opts.Log,
		now:      time.Now,
		interval: opts.CheckInterval,
		warned:   map[uint16]bool{},
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.interval == 0 {
		m.interval = DefaultCheckInterval
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fromFiles() {
		cert, st, err := loadFiles(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, err
		}
		m.stamps = st
		m.install(cert, "files")
	} else {
		cert, err := m.selfSigned()
		if err != nil {
			return nil, err
		}
		m.install(cert, "self-signed")
	}
	m.nextCheck.Store(m.now().Add(m.interval).UnixNano())
	return m, nil
}

// GetCertificate is the tls.Config callback. It serves the same certificate
// whatever the SNI, since devices often send none or an IP address. At most
// once per check interval it first looks for changed files; a problem there
// is logged and the current certificate is served regardless.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	m.maybeCheck()
	return m.cur.Load(), nil
}

// Leaf returns the certificate being served now.
func (m *Manager) Leaf() *x509.Certificate { return m.cur.Load().Leaf }

// Reload re-reads the certificate files at once, changed or not (wire it to
// SIGHUP). On error the previous certificate stays in service. With a
// self-signed certificate it only renews one that is close to expiry.
func (m *Manager) Reload() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.check(true)
}

func (m *Manager) fromFiles() bool { return m.opts.CertFile != "" }

// maybeCheck lets one handshake per interval look at the files; the others
// carry on with the current certificate without waiting.
func (m *Manager) maybeCheck() {
	now := m.now()
	next := m.nextCheck.Load()
	if now.UnixNano() < next {
		return
	}
	if !m.nextCheck.CompareAndSwap(next, now.Add(m.interval).UnixNano()) {
		return
	}
	defer func() {
		// A reload problem must never fail or crash a handshake.
		if r := recover(); r != nil {
			m.log.Error("tls certificate check panicked; still serving the previous certificate", slog.Any("panic", r))
		}
	}()
	if !m.mu.TryLock() {
		return // a Reload is running; it will install whatever is new
	}
	defer m.mu.Unlock()
	_ = m.check(false) // check logs its own failures
}

// check reloads changed files (or all of them when force is set), or renews
// a self-signed certificate that is close to expiry. The caller holds mu.
func (m *Manager) check(force bool) error {
	if !m.fromFiles() {
		leaf := m.cur.Load().Leaf
		if leaf.NotAfter.Sub(m.now()) > renewBefore {
			return nil
		}
		cert, err := m.selfSigned()
		if err != nil {
			m.log.Error("tls self-signed certificate renewal failed; still serving the previous certificate", slog.Time("not_after", leaf.NotAfter), slog.String("error", err.Error()))
			return err
		}
		m.install(cert, "self-signed")
		return nil
	}
	st := statFiles(m.opts.CertFile, m.opts.KeyFile)
	if !force && st.same(m.stamps) {
		return nil
	}
	// Remember what was seen even if it does not load, so a broken file is
	// reported once rather than on every check; the next change retries.
	m.stamps = st
	cert, _, err := loadFiles(m.opts.CertFile, m.opts.KeyFile)
	if err != nil {
		m.log.Error("tls certificate reload failed; still serving the previous certificate",
			slog.String("cert_file", m.opts.CertFile), slog.String("key_file", m.opts.KeyFile), slog.String("error", err.Error()))
		return fmt.Errorf("reload: %w", err)
	}
	m.install(cert, "files")
	return nil
}

// install puts cert into service and says so, warning about validity
// problems: an expired or not yet valid certificate is still served, since
// many devices do not verify and refusing to start would stop all mail.
func (m *Manager) install(cert *tls.Certificate, source string) {
	prev := m.cur.Swap(cert)
	leaf := cert.Leaf
	sum := sha256.Sum256(leaf.Raw)
	attrs := []any{
		slog.String("source", source),
		slog.String("subject", leaf.Subject.String()),
		slog.String("serial", leaf.SerialNumber.Text(16)),
		slog.Time("not_after", leaf.NotAfter),
		slog.String("sha256", hex.EncodeToString(sum[:])),
	}
	if source == "files" {
		attrs = append(attrs, slog.String("cert_file", m.opts.CertFile))
	}
	msg := "tls certificate loaded"
	if prev != nil {
		msg = "tls certificate reloaded"
	}
	m.log.Info(msg, attrs...)
	now := m.now()
	switch {
	case now.After(leaf.NotAfter):
		m.log.Warn("tls certificate has expired; clients that verify will refuse it: replace the files, they are picked up without a restart", attrs...)
	case now.Before(leaf.NotBefore):
		m.log.Warn("tls certificate is not valid yet; check the clock or the certificate", attrs...)
	case leaf.NotAfter.Sub(now) < renewBefore && source == "files":
		m.log.Warn("tls certificate expires within 30 days; renew it, the new files are picked up without a restart", attrs...)
	}
}

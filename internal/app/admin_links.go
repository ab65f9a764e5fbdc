package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/signedurl"
)

// LinkKeyFile is the name, under data_dir, of the key that signs the links
// to stored messages and attachments in local webhook payloads. Deleting it
// (and restarting) revokes every link given out.
const LinkKeyFile = "link-key"

// linkPrefix is the admin listener's path for signed links; nothing else
// lives under it, so adminGate can let it through without the admin token.
const linkPrefix = "/v1/links/"

// linkWriteTimeout bounds one download: a 25 MiB attachment at 15 kB/s.
const linkWriteTimeout = 30 * time.Minute

// localLinks makes the URLs of a local webhook payload's large attachments
// and raw message: signed, expiring links to the admin listener, which an
// application on another host can fetch (a file:// path it could not).
type localLinks struct {
	signer *signedurl.Signer
	ttl    time.Duration
	now    func() time.Time
	// base is the public URL links begin with, and host what a link's Host
	// may be besides the admin listener's own names. Both are set once by
	// mountLinks when the admin listener is bound (its port may be chosen
	// then); until then, and without an admin listener, URL makes none.
	base atomic.Pointer[linkBase]
}

type linkBase struct {
	url     *url.URL
	host    string // lower case, IPv6 without brackets
	port    string // explicit, or the scheme's default
	defPort string // the scheme's default: what a Host without a port means
}

// newLocalLinks loads (or makes) the signing key in data_dir. Links need
// the admin listener: without one there are none, and nil is returned.
func newLocalLinks(cfg *config.Config, log *slog.Logger) (*localLinks, error) {
	if cfg.Admin.Addr == "" {
		return nil, nil
	}
	path := cfg.Path(LinkKeyFile)
	key, created, err := signedurl.LoadKey(path)
	if err != nil {
		return nil, err
	}
	s, err := signedurl.New(key)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("link signing key generated", slog.String("stage", "gateway"), slog.String("key_file", path))
	}
	return &localLinks{signer: s, ttl: cfg.Delivery.URLTTL.D(), now: time.Now}, nil
}

// URL links the stored raw message or attachment key for url_ttl from now.
// Each webhook attempt calls it, so a retry carries fresh links. Without a
// bound admin listener it returns "": the payload's key is the reference.
func (l *localLinks) URL(_ context.Context, key string) (string, error) {
	b := l.base.Load()
	if b == nil {
		return "", nil
	}
	o, ok := linkObject(key)
	if !ok {
		return "", fmt.Errorf("link %s: not a raw message or attachment key", key)
	}
	p := o.ID + "/raw"
	if o.Kind == signedurl.KindAttachment {
		p = o.ID + "/attachments/" + strconv.Itoa(o.Part)
	}
	u := b.url.JoinPath(linkPrefix, p)
	u.RawQuery = l.signer.Query(o, l.now().Add(l.ttl)).Encode()
	return u.String(), nil
}

// linkObject is the object a store key names: the raw message
// (postern.MsgID.RawKey) or a stored attachment (AttachmentKey).
func linkObject(key string) (signedurl.Object, bool) {
	el := strings.Split(key, "/")
	if len(el) < 4 || el[0] != "m" {
		return signedurl.Object{}, false
	}
	id, err := postern.ParseMsgID(el[2])
	if err != nil {
		return signedurl.Object{}, false
	}
	if key == id.RawKey() {
		return signedurl.Object{ID: id.String(), Kind: signedurl.KindRaw}, true
	}
	if len(el) == 5 && el[3] == "att" {
		if n, err := strconv.Atoi(el[4]); err == nil && n >= 0 && key == id.AttachmentKey(n) {
			return signedurl.Object{ID: id.String(), Kind: signedurl.KindAttachment, Part: n}, true
		}
	}
	return signedurl.Object{}, false
}

// publicLinkBase is delivery.public_url, or http://<the bound admin
// address>, with the gateway's hostname for a wildcard address (an
// application elsewhere cannot reach 0.0.0.0).
func publicLinkBase(cfg *config.Config, bound net.Addr) (*linkBase, error) {
	raw := cfg.Delivery.PublicURL
	if raw == "" {
		host, port, err := net.SplitHostPort(bound.String())
		if err != nil {
			return nil, err
		}
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			host = cfg.Hostname
		}
		raw = "http://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("delivery.public_url: %w", err)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	b := &linkBase{url: u, host: strings.ToLower(u.Hostname()), port: u.Port(), defPort: map[string]string{"http": "80", "https": "443"}[u.Scheme]}
	if b.port == "" {
		b.port = b.defPort
	}
	return b, nil
}

// allows reports whether a request's Host names the public URL's host and
// port. Without a port it is the scheme's default, which is what a client
// or a reverse proxy sends for https://name/.
func (b *linkBase) allows(hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), b.defPort
	}
	return host != "" && strings.ToLower(host) == b.host && port == b.port
}

// linkRequest reports whether adminGate should leave r to the signed-link
// handlers (which check its signature) instead of asking for the admin
// token: a GET or HEAD of a clean path under linkPrefix, with links on.
func (a *App) linkRequest(r *http.Request) bool {
	if a.be == nil || a.be.links == nil || a.be.links.base.Load() == nil {
		return false
	}
	p := r.URL.Path
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		strings.HasPrefix(p, linkPrefix) && path.Clean(p) == p
}

// linkHostOK reports whether host is delivery.public_url's, which a signed
// link may be fetched under (the rest of the admin listener may not).
func (a *App) linkHostOK(host string) bool {
	b := a.be.links.base.Load()
	return b != nil && b.allows(host)
}

// mountLinks adds signed, expiring links to stored messages and attachments to the admin mux.
//
//	GET|HEAD /v1/links/{id}/raw?expires=<unix>&sig=<base64url>
//	GET|HEAD /v1/links/{id}/attachments/{n}?expires=<unix>&sig=<base64url>
//
// They need no admin token: the signature (package signedurl, keyed by
// data_dir/link-key) grants one object until expires. A bad or missing
// signature is 403, an expired link with a good one 410, an object that
// retention has removed 404.
func (a *App) mountLinks(mux *http.ServeMux) {
	l := a.be.links
	if l == nil || a.adminLn == nil {
		return
	}
	b, err := publicLinkBase(a.cfg, a.adminLn.Addr())
	if err != nil {
		// config.Validate has parsed public_url; this cannot happen.
		a.log.Error("signed links off", slog.String("stage", "admin"), slog.Any("err", err))
		return
	}
	l.base.Store(b)
	refused := &refusalLog{log: a.log}
	mux.HandleFunc("GET "+linkPrefix+"{id}/raw", func(w http.ResponseWriter, r *http.Request) {
		a.serveLink(w, r, refused, signedurl.Object{ID: r.PathValue("id"), Kind: signedurl.KindRaw})
	})
	mux.HandleFunc("GET "+linkPrefix+"{id}/attachments/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n < 0 || strconv.Itoa(n) != r.PathValue("n") {
			refused.write(w, r, http.StatusForbidden, "link_signature", "forbidden: not a valid link")
			return
		}
		a.serveLink(w, r, refused, signedurl.Object{ID: r.PathValue("id"), Kind: signedurl.KindAttachment, Part: n})
	})
}

// serveLink checks r's signature for o and streams the object from the
// store, as a download that no browser renders or caches for others.
func (a *App) serveLink(w http.ResponseWriter, r *http.Request, refused *refusalLog, o signedurl.Object) {
	id, err := postern.ParseMsgID(o.ID)
	if err != nil || id.String() != o.ID {
		refused.write(w, r, http.StatusForbidden, "link_signature", "forbidden: not a valid link")
		return
	}
	switch err := a.be.links.signer.Check(o, r.URL.Query(), time.Now()); {
	case errors.Is(err, signedurl.ErrExpired):
		refused.write(w, r, http.StatusGone, "link_expired", "gone: this link has expired (delivery.url_ttl); a new delivery of the message carries fresh links")
		return
	case err != nil:
		refused.write(w, r, http.StatusForbidden, "link_signature", "forbidden: not a valid link")
		return
	}
	log := a.log.With(slog.String("msg_id", o.ID), slog.String("stage", "admin"), slog.String("object", o.Kind))
	key, name, ctype := id.RawKey(), o.ID+".eml", "message/rfc822"
	if o.Kind == signedurl.KindAttachment {
		log = log.With(slog.Int("part", o.Part))
		att, err := a.linkedAttachment(r.Context(), id, o.Part)
		if err != nil {
			a.linkFailed(w, log, err)
			return
		}
		key, name, ctype = att.Key, safeFilename(att.Filename, fmt.Sprintf("attachment-%d", o.Part)), servedType(att.ContentType)
	}
	var body io.ReadCloser
	size := int64(-1)
	if r.Method != http.MethodHead {
		rc, err := a.store.Get(r.Context(), key)
		if err != nil {
			a.linkFailed(w, log, err)
			return
		}
		defer rc.Close()
		body = rc
	}
	if st, err := a.store.Stat(r.Context(), key); err == nil {
		size = st.Size
	} else if body == nil {
		a.linkFailed(w, log, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Disposition", attachmentDisposition(name))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("Cache-Control", "private")
	h.Set("Referrer-Policy", "no-referrer")
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	if body == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(linkWriteTimeout))
	n, err := io.Copy(w, body)
	if err != nil {
		log.Warn("link download cut short", slog.Int64("bytes", n), slog.String("remote", r.RemoteAddr), slog.Any("err", err))
		return
	}
	log.Info("link served", slog.Int64("bytes", n), slog.String("remote", r.RemoteAddr))
}

// errNotStored is an attachment that parse kept inline in the payload,
// which has no object to link to.
var errNotStored = fmt.Errorf("attachment not stored on its own: %w", blob.ErrNotFound)

// linkedAttachment reads attachment n's name, type and key from the
// message's parsed.json, decoding nothing else (inline contents are
// skipped, not kept).
func (a *App) linkedAttachment(ctx context.Context, id postern.MsgID, n int) (postern.Attachment, error) {
	rc, err := a.store.Get(ctx, id.ParsedKey())
	if err != nil {
		return postern.Attachment{}, err
	}
	defer rc.Close()
	var p struct {
		Attachments []struct {
			Filename    string `json:"filename"`
			ContentType string `json:"content_type"`
			Key         string `json:"key"`
		} `json:"attachments"`
	}
	if err := json.NewDecoder(rc).Decode(&p); err != nil {
		return postern.Attachment{}, fmt.Errorf("decode %s: %w", id.ParsedKey(), err)
	}
	if n >= len(p.Attachments) || p.Attachments[n].Key != id.AttachmentKey(n) {
		return postern.Attachment{}, errNotStored
	}
	at := p.Attachments[n]
	return postern.Attachment{Filename: at.Filename, ContentType: at.ContentType, Key: at.Key}, nil
}

// linkFailed answers a link whose object cannot be read: 404 when the
// store has none (retention removed the message), else 500.
func (a *App) linkFailed(w http.ResponseWriter, log *slog.Logger, err error) {
	if errors.Is(err, blob.ErrNotFound) {
		log.Info("link to a removed object", slog.Any("err", err))
		http.Error(w, "not found: the message is no longer kept (retention)", http.StatusNotFound)
		return
	}
	log.Error("link failed", slog.Any("err", err))
	http.Error(w, "internal error", http.StatusInternalServerError)
}

// servedType is an attachment's declared media type with its charset, or
// application/octet-stream when it does not parse. The response's
// nosniff, sandbox and attachment headers keep any type from running.
func servedType(ct string) string {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !strings.Contains(mt, "/") {
		return "application/octet-stream"
	}
	keep := map[string]string{}
	if cs, ok := params["charset"]; ok {
		keep["charset"] = cs
	}
	if s := mime.FormatMediaType(mt, keep); s != "" {
		return s
	}
	return "application/octet-stream"
}

// safeFilename is the sender's file name fit for a Content-Disposition:
// its last path element, without control or invisible formatting
// characters (a right-to-left override can disguise an extension), without
// leading or trailing dots and spaces, at most 200 bytes; fallback when
// nothing is left.
func safeFilename(name, fallback string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > 200 {
			break
		}
		b.WriteRune(r)
	}
	if s := strings.Trim(b.String(), " ."); s != "" {
		return s
	}
	return fallback
}

// attachmentDisposition quotes name as RFC 6266 asks (RFC 2231 encoding
// for names beyond ASCII).
func attachmentDisposition(name string) string {
	if s := mime.FormatMediaType("attachment", map[string]string{"filename": name}); s != "" {
		return s
	}
	return "attachment"
}

package smtpd

import (
	"crypto/tls"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// The commands the front door answers itself, before go-smtp sees them:
// what go-smtp would answer wrongly or not at all. Everything else is
// handed to go-smtp, with trailing blanks trimmed.

// Parameters offered (EHLO: SIZE, 8BITMIME, SMTPUTF8, DSN; AUTH=): any other
// is refused with 555 5.5.4 (RFC 5321 section 4.1.1.11).
var (
	mailParams = []string{"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH"}
	rcptParams = []string{"NOTIFY", "ORCPT"}
)

// msgSizeExceeded answers a message, or a declared SIZE, over the limit (in
// Postfix's words).
const msgSizeExceeded = "Message size exceeds fixed limit"

// sizeOverflows reports a SIZE parameter that is well formed (RFC 1870:
// 1*20DIGIT) but too large for go-smtp, which parses it as 32 bits and
// would call it malformed (501); any limit is below it, so it gets 552.
func sizeOverflows(params []string) bool {
	for _, p := range params {
		kw, val, _ := strings.Cut(p, "=")
		if !strings.EqualFold(kw, "SIZE") || val == "" || len(val) > 20 || strings.Trim(val, "0123456789") != "" {
			continue
		}
		if _, err := strconv.ParseUint(val, 10, 32); err != nil {
			return true
		}
	}
	return false
}

// command decides on one complete command line: the line to hand to
// go-smtp and true, or false when the front has answered it.
func (f *frontConn) command(line []byte) ([]byte, bool) {
	raw := strings.TrimRight(string(line), "\r\n")
	text := strings.TrimRight(raw, " \t")
	rawVerb, rawArg, _ := strings.Cut(text, " ")
	verb := strings.ToUpper(rawVerb)
	arg := strings.TrimLeft(rawArg, " ")

	answer := func(code int, enh, msg string) ([]byte, bool) {
		f.writeDirect(code, enh, msg)
		f.cfg.observe(observedVerb(verb), code)
		return nil, false
	}
	pass := func() ([]byte, bool) {
		f.verb = verb
		if text == raw && verb == rawVerb && len(arg) == len(rawArg) {
			return line, true // already as go-smtp reads it best
		}
		out := verb
		if arg != "" {
			out += " " + arg
		}
		return []byte(out + "\r\n"), true
	}
	needEHLO := func() ([]byte, bool) { return answer(503, "5.5.1", "Error: send HELO/EHLO first") }

	switch verb {
	case "":
		return answer(500, "5.5.2", "Error: bad syntax")
	case "HELO", "EHLO", "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "SEND", "SOML", "SAML", "TURN":
		return pass()
	case "DATA", "AUTH":
		if f.needEHLO {
			return needEHLO()
		}
		return pass()
	case "BDAT":
		// The chunk follows the command whatever the reply; go-smtp reads
		// it when the arguments parse (as below), so the front must pass
		// exactly that many bytes and read the next command after them.
		if size, last, ok := bdatArgs(arg); ok && size > 0 {
			f.mode, f.chunkLeft, f.chunkLast = modeChunk, size, last
			f.dataStart = time.Now()
		} else if ok {
			f.chunkLast = last
		}
		return pass()
	case "MAIL":
		switch {
		case f.needEHLO:
			return needEHLO()
		case !f.greeted:
			return pass() // go-smtp answers the sequence error
		}
		rest, ok := cutPrefixFold(arg, "FROM:")
		if !ok {
			return answer(501, "5.5.2", "Syntax: MAIL FROM:<address>")
		}
		pa, ok := splitPathArg(rest)
		if !ok {
			return answer(501, "5.1.7", "Bad sender address syntax")
		}
		smtputf8 := hasParam(pa.params, "SMTPUTF8")
		if pa.path != "" {
			switch checkPath(pa.path, smtputf8) {
			case addrSyntax:
				return answer(501, "5.1.7", "Bad sender address syntax")
			case addrNonASCII:
				return answer(553, "5.6.7", "Non-ASCII sender address requires SMTPUTF8")
			}
		}
		switch checkParams(pa.params, mailParams, smtputf8) {
		case paramSyntax:
			return answer(501, "5.5.4", "Malformed MAIL parameter")
		case paramUnknown:
			return answer(555, "5.5.4", "Unsupported MAIL parameter")
		}
		if sizeOverflows(pa.params) {
			return answer(552, "5.3.4", msgSizeExceeded)
		}
		f.mailUTF8 = smtputf8
		return pass()
	case "RCPT":
		switch {
		case f.needEHLO:
			return needEHLO()
		case !f.txn:
			return pass() // go-smtp answers the sequence error
		}
		rest, ok := cutPrefixFold(arg, "TO:")
		if !ok {
			return answer(501, "5.5.2", "Syntax: RCPT TO:<address>")
		}
		pa, ok := splitPathArg(rest)
		if !ok || pa.path == "" {
			return answer(501, "5.1.3", "Bad recipient address syntax")
		}
		if !strings.EqualFold(pa.path, "postmaster") {
			switch checkPath(pa.path, f.utf8Txn) {
			case addrSyntax:
				return answer(501, "5.1.3", "Bad recipient address syntax")
			case addrNonASCII:
				return answer(553, "5.6.7", "Non-ASCII recipient address requires SMTPUTF8")
			}
		}
		switch checkParams(pa.params, rcptParams, f.utf8Txn) {
		case paramSyntax:
			return answer(501, "5.5.4", "Malformed RCPT parameter")
		case paramUnknown:
			return answer(555, "5.5.4", "Unsupported RCPT parameter")
		}
		return pass()
	case "HELP":
		f.help(arg)
		f.cfg.observe("HELP", 214)
		return nil, false
	case "STARTTLS":
		f.startTLS(arg)
		return nil, false
	case "GET", "POST", "PUT", "HEAD", "CONNECT", "OPTIONS":
		// A web client or proxy probe, not a mail client (as Postfix's
		// smtpd_forbidden_commands): end the session at once.
		f.log.Info("non-SMTP client", slog.String("stage", "gateway"), slog.String("command", verb))
		answer(221, "2.7.0", f.cfg.hostname+" Error: not an SMTP client, closing connection")
		f.Close()
		return nil, false
	}
	return answer(500, "5.5.2", "Error: command not recognized")
}

// observedVerb keeps metric labels bounded: unknown verbs are "other".
func observedVerb(v string) string {
	if _, ok := helpTopics[v]; ok {
		return v
	}
	return "other"
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

// bdatArgs parses "size [LAST]" exactly as go-smtp v0.26.0 does (it reads
// the chunk only when they parse).
func bdatArgs(arg string) (size int64, last, ok bool) {
	args := strings.Fields(arg)
	if len(args) == 0 || len(args) > 2 {
		return 0, false, false
	}
	if len(args) == 2 {
		if !strings.EqualFold(args[1], "LAST") {
			return 0, false, false
		}
		last = true
	}
	n, err := strconv.ParseUint(args[0], 10, 32)
	if err != nil {
		return 0, false, false
	}
	return int64(n), last, true
}

// helpTopics answers HELP <command> (RFC 5321 section 4.1.1.8).
var helpTopics = map[string]string{
	"HELO":     "HELO <hostname>: introduce yourself (EHLO also lists the extensions)",
	"EHLO":     "EHLO <hostname>: introduce yourself and list the extensions",
	"STARTTLS": "STARTTLS: start TLS, then send EHLO again",
	"AUTH":     "AUTH PLAIN|LOGIN [initial-response]: authenticate, over TLS unless your network may use plaintext",
	"MAIL":     "MAIL FROM:<sender> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8] [RET=FULL|HDRS] [ENVID=id]: start a message",
	"RCPT":     "RCPT TO:<recipient> [NOTIFY=...] [ORCPT=...]: add a recipient",
	"DATA":     "DATA: send the message, ended by a line holding only a dot",
	"BDAT":     "BDAT <size> [LAST]: send the message in chunks",
	"RSET":     "RSET: abandon the current message",
	"NOOP":     "NOOP: do nothing",
	"VRFY":     "VRFY <address>: addresses are not verified here (252)",
	"HELP":     "HELP [command]: this help",
	"QUIT":     "QUIT: end the session",
}

func (f *frontConn) help(arg string) {
	if arg != "" {
		topic, ok := helpTopics[strings.ToUpper(arg)]
		if !ok {
			f.writeDirect(504, "5.5.4", "HELP topic not known; HELP lists the commands")
			return
		}
		f.writeDirect(214, "2.0.0", topic)
		return
	}
	cmds := "HELO EHLO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT AUTH"
	if f.cfg.tls != nil && f.TLS() == nil {
		cmds = "HELO EHLO STARTTLS MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT AUTH"
	}
	f.writeLines(214, "2.0.0", []string{
		"Commands: " + cmds,
		"HELP <command> describes one; the protocol is RFC 5321",
		"This is a Postern gateway; its operator has the documentation",
	})
}

// startTLS runs STARTTLS (RFC 3207). Whatever the client pipelined after
// the command came in plaintext and is discarded (CVE-2011-0411), and the
// session starts again: a new EHLO is required before mail.
func (f *frontConn) startTLS(arg string) {
	deny := func(code int, enh, msg string) {
		f.writeDirect(code, enh, msg)
		f.cfg.observe("STARTTLS", code)
	}
	switch {
	case arg != "":
		deny(501, "5.5.4", "Syntax: STARTTLS")
		return
	case f.TLS() != nil:
		deny(503, "5.5.1", "Error: TLS already active")
		return
	case f.cfg.tls == nil:
		deny(502, "5.5.1", "Error: command not implemented")
		return
	case !f.greeted:
		deny(503, "5.5.1", "Error: send HELO/EHLO first")
		return
	case f.txn:
		deny(503, "5.5.1", "Error: MAIL transaction in progress")
		return
	case f.authed:
		deny(503, "5.5.1", "Error: already authenticated")
		return
	}
	f.writeDirect(220, "2.0.0", "Ready to start TLS")
	f.cfg.observe("STARTTLS", 220)
	f.r, f.w = 0, 0
	tconn := tls.Server(f.tc, f.cfg.tls)
	deadline := time.Now().Add(f.cfg.cmdTimeout)
	f.tc.SetReadDeadline(deadline)
	f.tc.SetWriteDeadline(deadline)
	if err := tconn.Handshake(); err != nil {
		f.log.Info("TLS handshake failed", slog.String("stage", "gateway"), slog.String("error", err.Error()))
		f.Close()
		return
	}
	st := tconn.ConnectionState()
	f.closeMu.Lock()
	f.conn = tconn
	f.closeMu.Unlock()
	f.tlsState.Store(&st)
	f.greeted, f.needEHLO = false, true
}

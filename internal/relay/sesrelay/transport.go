// Package sesrelay is the relay Transport for Amazon SES: SES v2 SendEmail
// calls with the raw message, one per chunk of at most 50 recipients.
package sesrelay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/smithy-go"
	"golang.org/x/net/idna"

	"github.com/postern/postern/internal/crlf"
	"github.com/postern/postern/internal/relay"
)

// API is the one SES v2 call the transport makes; *sesv2.Client has it.
type API interface {
	SendEmail(ctx context.Context, in *sesv2.SendEmailInput, optFns ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error)
}

var _ API = (*sesv2.Client)(nil)

// DiagSES is the diagnostic type of SES's answers in DSNs.
const DiagSES = "X-SES"

// MaxRecipientsPerCall is SES's limit on the recipients of one SendEmail
// call; limits.max_recipients allows more (100 by default).
const MaxRecipientsPerCall = 50

// Defaults applied to zero Config fields.
const (
	DefaultName     = "email.amazonses.com"
	DefaultMaxBytes = 40 << 20 // SES v2's limit on a raw message
)

// Config tunes the SendEmail calls. Every field is optional.
type Config struct {
	// ConfigurationSet names the SES configuration set (event publishing,
	// dedicated IPs).
	ConfigurationSet string
	// FromARN is the identity ARN that authorizes the message's From
	// address (sending authorization); it overrides X-SES-FROM-ARN and
	// X-SES-SOURCE-ARN headers in the raw message.
	FromARN string
	// FeedbackToSender makes SES send bounces and complaints to the
	// envelope sender (FeedbackForwardingEmailAddress). Without it they go
	// where the identity's settings say.
	FeedbackToSender bool
	// FeedbackARN authorizes the feedback address (sending authorization).
	FeedbackARN string
	// Name is SES's name in DSN Remote-MTA fields; DefaultName when empty.
	Name string
	// MaxBytes refuses larger messages before calling; DefaultMaxBytes when zero.
	MaxBytes int64
}

// Transport sends through SES. One Transport serves concurrent calls.
type Transport struct {
	api API
	cfg Config
}

var _ relay.Transport = (*Transport)(nil)

// New builds a Transport over api (for example sesv2.NewFromConfig(...)).
func New(api API, cfg Config) *Transport {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	return &Transport{api: api, cfg: cfg}
}

// Send makes one SendEmail call per chunk of at most MaxRecipientsPerCall
// recipients SES can take, one after another, with the same raw message.
// SES answers once per call, so every recipient of a chunk gets its
// chunk's answer: when one chunk fails, the others' recipients keep their
// acceptance and the relay stage retries only the failed chunk's (it keeps
// settled recipients in its state). SendEmail has no idempotency key, so a
// chunk is sent again only when its acceptance was not recorded (the
// function died between the call and the state write). Recipients SES
// cannot address (a non-ASCII local part, an invalid domain) are refused
// beforehand, each on its own.
func (t *Transport) Send(ctx context.Context, m *relay.Message) (*relay.Result, error) {
	res := &relay.Result{Remote: t.cfg.Name, Rcpts: make([]relay.RcptResult, len(m.To))}
	var to []string
	var idx []int
	for i, r := range m.To {
		res.Rcpts[i].Addr = r.Addr
		a, err := asciiAddr(r.Addr)
		if err != nil {
			res.Rcpts[i].Reply = relay.Reply{Status: "5.1.3", Text: "recipient address cannot be sent through SES: " + err.Error(), Type: relay.DiagLocal}
			continue
		}
		to = append(to, a)
		idx = append(idx, i)
	}
	set := func(idx []int, r relay.Reply) {
		for _, i := range idx {
			res.Rcpts[i].Reply = r
		}
	}
	if len(to) == 0 {
		return res, nil
	}
	// SES takes the raw message over HTTPS, not SMTP, but sends it on by
	// SMTP and documents it as RFC 5321 text; CRLF line ends (package
	// crlf) are what that needs, and the limit applies to what is sent.
	raw, err := io.ReadAll(io.LimitReader(crlf.NewReader(m.Body), t.cfg.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("sesrelay: read message %s: %w", m.ID, err)
	}
	if int64(len(raw)) > t.cfg.MaxBytes {
		set(idx, relay.Reply{Status: "5.3.4", Text: fmt.Sprintf("message exceeds the SES limit of %d bytes", t.cfg.MaxBytes), Type: relay.DiagLocal})
		return res, nil
	}
	for start := 0; start < len(to); start += MaxRecipientsPerCall {
		end := min(start+MaxRecipientsPerCall, len(to))
		set(idx[start:end], t.sendChunk(ctx, m, raw, to[start:end]))
	}
	return res, nil
}

// sendChunk makes one SendEmail call for to and returns its answer.
func (t *Transport) sendChunk(ctx context.Context, m *relay.Message, raw []byte, to []string) relay.Reply {
	in := &sesv2.SendEmailInput{
		Content:     &types.EmailContent{Raw: &types.RawMessage{Data: raw}},
		Destination: &types.Destination{ToAddresses: to},
	}
	if t.cfg.ConfigurationSet != "" {
		in.ConfigurationSetName = aws.String(t.cfg.ConfigurationSet)
	}
	if t.cfg.FromARN != "" {
		in.FromEmailAddressIdentityArn = aws.String(t.cfg.FromARN)
	}
	if t.cfg.FeedbackToSender && m.From != "" {
		if a, err := asciiAddr(m.From); err == nil {
			in.FeedbackForwardingEmailAddress = aws.String(a)
			if t.cfg.FeedbackARN != "" {
				in.FeedbackForwardingEmailAddressIdentityArn = aws.String(t.cfg.FeedbackARN)
			}
		}
	}
	out, err := t.api.SendEmail(ctx, in)
	if err != nil {
		return classify(err)
	}
	text := "accepted"
	if out.MessageId != nil {
		text = "accepted as " + *out.MessageId
	}
	return relay.Reply{Status: "2.0.0", Text: text, Type: DiagSES}
}

// classify is the SES edge's one table from an error to a reply. Only a
// refusal of the message itself is permanent; account, configuration and
// capacity problems are retried until the route's max age, so that an
// operator can fix them before mail bounces.
func classify(err error) relay.Reply {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		text := ae.ErrorCode()
		if msg := ae.ErrorMessage(); msg != "" {
			text += ": " + msg
		}
		status := "4.3.0"
		switch ae.ErrorCode() {
		case "MessageRejected":
			status = "5.6.0"
		case "BadRequestException":
			status = "5.5.4"
		case "TooManyRequestsException", "LimitExceededException", "Throttling", "ThrottlingException":
			status = "4.4.5"
		case "AccountSuspendedException", "SendingPausedException", "MailFromDomainNotVerifiedException", "NotFoundException":
			status = "4.7.0"
		}
		return relay.Reply{Status: status, Text: text, Type: DiagSES}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() > 0 {
		return relay.Reply{Status: "4.3.0", Text: fmt.Sprintf("HTTP %d", re.HTTPStatusCode()), Type: DiagSES}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return relay.LocalReply("4.4.2", "timeout talking to SES")
	case errors.Is(err, context.Canceled):
		return relay.LocalReply("4.4.2", "interrupted")
	}
	return relay.LocalReply("4.4.1", "could not reach SES")
}

// asciiAddr makes addr acceptable to SES, which takes no SMTPUTF8: the
// domain goes to its A-label (punycode) form; a non-ASCII local part
// cannot be sent.
func asciiAddr(addr string) (string, error) {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 || strings.ContainsAny(addr, "\r\n<>\x00 ") {
		return "", errors.New("malformed address")
	}
	local, domain := addr[:i], addr[i+1:]
	for j := 0; j < len(local); j++ {
		if local[j] >= 0x80 {
			return "", errors.New("non-ASCII local part")
		}
	}
	d, err := idna.Lookup.ToASCII(domain)
	if err != nil {
		return "", errors.New("invalid domain")
	}
	return local + "@" + d, nil
}

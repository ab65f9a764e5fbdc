package sqsqueue

import (
	"encoding/base64"
	"fmt"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// BodyEncodingAttribute is the message attribute (type String) that names
// how a body was encoded for SQS. Without it the body is the message itself.
const BodyEncodingAttribute = "body-encoding"

// EncodingBase64 is the value of BodyEncodingAttribute for a body sent as
// standard base64 (with padding).
const EncodingBase64 = "base64"

// encodeBody returns the SQS body for b and, when b cannot travel as it is,
// the attributes that say how it was encoded.
func encodeBody(b []byte) (string, map[string]types.MessageAttributeValue) {
	if sqsText(b) {
		return string(b), nil
	}
	return base64.StdEncoding.EncodeToString(b), map[string]types.MessageAttributeValue{
		BodyEncodingAttribute: {DataType: aws.String("String"), StringValue: aws.String(EncodingBase64)},
	}
}

// DecodeBody turns a body received from SQS back into the bytes that were
// sent, given the value of its BodyEncodingAttribute ("" when the message
// has none).
func DecodeBody(body, encoding string) ([]byte, error) {
	switch encoding {
	case "":
		return []byte(body), nil
	case EncodingBase64:
		b, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return nil, fmt.Errorf("decode base64 body: %w", err)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("unknown body encoding %q", encoding)
	}
}

// sqsText reports whether b can be an SQS message body as it is: UTF-8 made
// only of characters every SQS implementation accepts. SQS documents the
// characters of XML 1.0, including #x10000-#x10FFFF, but its own error text
// lists only the ranges below U+10000 and fauxqs refuses anything above
// (it checks UTF-16 code units, so surrogate pairs fail); such bodies, rare
// in jobs (an emoji in a subject), go as base64 instead.
func sqsText(b []byte) bool {
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			return false
		}
		if !bodyChar(r) {
			return false
		}
		b = b[size:]
	}
	return true
}

// bodyChar reports whether r may appear in a body sent as it is.
func bodyChar(r rune) bool {
	switch {
	case r == 0x9, r == 0xA, r == 0xD:
		return true
	case r >= 0x20 && r <= 0xD7FF:
		return true
	case r >= 0xE000 && r <= 0xFFFD:
		return true
	}
	return false
}

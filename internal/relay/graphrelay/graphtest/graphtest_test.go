package graphtest_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/relay/graphrelay/graphtest"
)

const tok = "good-token"

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) code() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(a.body, &e)
	return e.Error.Code
}

// do makes one request; a nil body with chunked set sends no Content-Length.
func do(t *testing.T, method, url, ctype, token string, body []byte, hdr ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body, req.ContentLength = nil, 0
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if len(hdr)%2 == 1 { // "chunked": a body of unknown length, so no Content-Length
		req.Body, req.ContentLength = io.NopCloser(strings.NewReader("")), -1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func want(t *testing.T, a answer, status int, code string) {
	t.Helper()
	if a.status != status || a.code() != code {
		t.Fatalf("answer %d %s, want %d %s", a.status, a.body, status, code)
	}
}

func newServer(t *testing.T) (*graphtest.Server, string) {
	s := graphtest.New(t, func(token string) bool { return token == tok })
	return s, s.URL + "/users/scanner@contoso.com"
}

func createDraft(t *testing.T, user string) string {
	t.Helper()
	a := do(t, "POST", user+"/messages", "text/plain", tok, []byte(base64.StdEncoding.EncodeToString([]byte("Subject: x\r\n\r\nhi\r\n"))))
	want(t, a, http.StatusCreated, "")
	var m struct{ ID string }
	if err := json.Unmarshal(a.body, &m); err != nil || m.ID == "" {
		t.Fatalf("created %s", a.body)
	}
	return m.ID
}

func TestCreateMessageContract(t *testing.T) {
	s, user := newServer(t)
	want(t, do(t, "POST", user+"/messages", "text/plain", tok, []byte("not base64!")), 400, "ErrorMimeContentInvalidBase64String")
	want(t, do(t, "POST", user+"/messages", "text/plain", tok, bytes.Repeat([]byte("QUFB"), 1<<20+1)), 413, "ErrorMessageSizeExceeded")
	want(t, do(t, "POST", user+"/messages", "text/plain", tok, bytes.Repeat([]byte("QUFB"), 1<<20)), 201, "")
	want(t, do(t, "POST", user+"/sendMail", "text/plain", tok, bytes.Repeat([]byte("QUFB"), 1<<20+1)), 413, "ErrorMessageSizeExceeded")
	want(t, do(t, "POST", user+"/messages", "text/plain", "", []byte("QUFB")), 401, "InvalidAuthenticationToken")
	want(t, do(t, "POST", user+"/messages", "text/plain", "expired", []byte("QUFB")), 401, "InvalidAuthenticationToken")
	if n := len(s.Drafts()); n != 1 {
		t.Fatalf("%d drafts", n)
	}
}

func TestDraftLifecycleContract(t *testing.T) {
	s, user := newServer(t)
	id := createDraft(t, user)
	msg := user + "/messages/" + id
	want(t, do(t, "PATCH", msg, "application/json", tok, []byte("{")), 400, "BadRequest")
	want(t, do(t, "PATCH", user+"/messages/AAMkADnope=", "application/json", tok, []byte(`{}`)), 404, "ErrorItemNotFound")
	for _, bad := range []string{"Boolean 0x0E010003", "Flag 0x0E01", "Boolean 0xZZ", "Boolean 0x8001"} {
		want(t, do(t, "PATCH", msg, "application/json", tok, []byte(`{"singleValueExtendedProperties":[{"id":"`+bad+`","value":"true"}]}`)), 400, "ErrorInvalidExtendedProperty")
	}
	want(t, do(t, "PATCH", msg, "application/json", tok, []byte(`{"singleValueExtendedProperties":[{"id":"Boolean 0x0E01000B","value":"true"}]}`)), 200, "")
	want(t, do(t, "POST", msg+"/send", "", tok, nil, "chunked"), 411, "LengthRequired")
	s.FailOn(graphtest.SendDraft, graphtest.Throttled(9*time.Second))
	a := do(t, "POST", msg+"/send", "", tok, nil)
	want(t, a, 429, "ApplicationThrottled")
	if a.header.Get("Retry-After") != "9" {
		t.Fatalf("Retry-After %q", a.header.Get("Retry-After"))
	}
	want(t, do(t, "POST", msg+"/send", "", tok, nil), 202, "")
	// Deleted after submission: neither a draft nor in Sent Items.
	if d, si, sent := s.Drafts(), s.SentItems(), s.Sent(); len(d) != 0 || len(si) != 0 || len(sent) != 1 || sent[0].ExtendedProperties[graphtest.DeleteAfterSubmit] != "true" {
		t.Fatalf("%d drafts, %d in Sent Items, %d sent", len(d), len(si), len(sent))
	}
	want(t, do(t, "POST", msg+"/send", "", tok, nil), 404, "ErrorItemNotFound")

	// Kept in Sent Items without the property; a draft can be deleted.
	id2 := createDraft(t, user)
	want(t, do(t, "POST", user+"/messages/"+id2+"/send", "", tok, nil), 202, "")
	if si := s.SentItems(); len(si) != 1 || si[0].ID != id2 {
		t.Fatalf("Sent Items %v", si)
	}
	id3 := createDraft(t, user)
	want(t, do(t, "DELETE", user+"/messages/"+id3, "", tok, nil), 204, "")
	want(t, do(t, "DELETE", user+"/messages/"+id3, "", tok, nil), 404, "ErrorItemNotFound")
}

func TestAttachmentContract(t *testing.T) {
	s, user := newServer(t)
	id := createDraft(t, user)
	att := user + "/messages/" + id + "/attachments"
	want(t, do(t, "POST", att, "application/json", tok, []byte(`{"@odata.type":"#microsoft.graph.fileAttachment","name":"a.txt","contentBytes":"aGk="}`)), 201, "")
	want(t, do(t, "POST", att, "application/json", tok, []byte(`{"name":"a.txt","contentBytes":"aGk="}`)), 400, "ErrorInvalidRequest")
	big := fmt.Sprintf(`{"@odata.type":"#microsoft.graph.fileAttachment","name":"b","contentBytes":"%s"}`, strings.Repeat("A", 4<<20))
	want(t, do(t, "POST", att, "application/json", tok, []byte(big)), 413, "ErrorRequestEntityTooLarge")

	session := func(size int) answer {
		return do(t, "POST", att+"/createUploadSession", "application/json", tok,
			[]byte(fmt.Sprintf(`{"AttachmentItem":{"attachmentType":"file","name":"scan.pdf","size":%d,"contentType":"application/pdf"}}`, size)))
	}
	want(t, session(2<<20-1), 400, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize")
	a := session(5 << 20)
	want(t, a, 201, "")
	var us struct {
		UploadURL string   `json:"uploadUrl"`
		Next      []string `json:"nextExpectedRanges"`
	}
	if err := json.Unmarshal(a.body, &us); err != nil || us.UploadURL == "" || len(us.Next) != 1 || us.Next[0] != "0-" {
		t.Fatalf("session %s", a.body)
	}
	put := func(url, token string, start, n, total int) answer {
		return do(t, "PUT", url, "application/octet-stream", token, bytes.Repeat([]byte{'x'}, n),
			"Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+n-1, total))
	}
	want(t, put(us.UploadURL, tok, 0, 1<<20, 5<<20), 401, "InvalidAuthenticationToken")
	want(t, put(strings.Replace(us.UploadURL, "authtoken=", "authtoken=x", 1), "", 0, 1<<20, 5<<20), 401, "InvalidAuthenticationToken")
	want(t, put(us.UploadURL, "", 1, 1<<20, 5<<20), 416, "InvalidRange")
	want(t, put(us.UploadURL, "", 0, 1<<20, 6<<20), 400, "InvalidContentRange")
	want(t, put(us.UploadURL, "", 0, 4<<20+1, 5<<20), 413, "ErrorRequestEntityTooLarge")
	s.FailOn(graphtest.UploadRange, graphtest.Unavailable(0))
	want(t, put(us.UploadURL, "", 0, 4<<20, 5<<20), 503, "ServiceUnavailable")
	a = put(us.UploadURL, "", 0, 4<<20, 5<<20)
	want(t, a, 200, "")
	us.Next = nil
	if err := json.Unmarshal(a.body, &us); err != nil || len(us.Next) != 1 || us.Next[0] != fmt.Sprint(4<<20) {
		t.Fatalf("next expected %s", a.body)
	}
	a = put(us.UploadURL, "", 4<<20, 1<<20, 5<<20)
	if a.status != 201 || a.header.Get("Location") == "" {
		t.Fatalf("last range: %d, Location %q", a.status, a.header.Get("Location"))
	}
	d := s.Drafts()
	if len(d) != 1 || len(d[0].Attachments) != 2 || len(d[0].Attachments[1].Content) != 5<<20 || d[0].Attachments[1].Via != graphtest.UploadRange {
		t.Fatalf("drafts %d", len(d))
	}
}

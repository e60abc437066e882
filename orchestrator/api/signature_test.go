package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// Item 6 of issue 13: a signature is the body's HMAC-SHA256 in hex of
// either case.
func TestIssue13Item6_ValidSignature(t *testing.T) {
	body := []byte(`{"n": 1}`)
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write(body)
	sum := hex.EncodeToString(mac.Sum(nil))
	for _, h := range []string{"sha256=" + sum, "sha256=" + strings.ToUpper(sum), "SHA256=" + sum} {
		if !validSignature(h, body, "s3cret") {
			t.Errorf("%s refused", h)
		}
	}
	for _, h := range []string{"", "sha256=", sum, "sha1=" + sum, "sha256=" + sum[:62], "sha256=" + sum + "00", "sha256=zz" + sum[2:]} {
		if validSignature(h, body, "s3cret") {
			t.Errorf("%q accepted", h)
		}
	}
	if validSignature("sha256="+sum, body, "other") {
		t.Error("a signature under another secret accepted")
	}
}

package builtin

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/weftworks/weft/eventstore"
)

// MaxPublishSubject bounds the subject of a nats.publish step, in bytes:
// a subject longer than the NATS server's control line (4 KiB, with the
// rest of the line) closes the connection that publishes it, for good.
const MaxPublishSubject = 1024

// CheckPublishSubject returns an error when nats.publish may not send to
// subject: it is longer than MaxPublishSubject, or reserved for NATS or
// Weft (see eventstore.ReservedSubject) and matches none of the allow
// patterns. The API runs the same check on literal subjects when a
// definition is put.
func CheckPublishSubject(subject string, allow []string) error {
	if len(subject) > MaxPublishSubject {
		return fmt.Errorf("subject of %d bytes: the limit is %d", len(subject), MaxPublishSubject)
	}
	if !eventstore.ReservedSubject(subject) || slices.ContainsFunc(allow, func(p string) bool {
		return eventstore.SubjectMatches(p, subject)
	}) {
		return nil
	}
	return fmt.Errorf("subject %q is reserved: subjects starting with %s belong to NATS and Weft (an operator can allow some with --publish-allow)",
		subject, eventstore.ReservedPrefixes())
}

// CheckPublishAllow checks that every pattern is a NATS subject or
// wildcard pattern (* for one token, > for the rest), as
// Config.PublishAllow takes.
func CheckPublishAllow(patterns []string) error {
	for _, p := range patterns {
		tokens := strings.Split(p, ".")
		for i, tok := range tokens {
			switch {
			case tok == "" || strings.ContainsFunc(tok, unicode.IsSpace):
				return fmt.Errorf("publish allow pattern %q: tokens must be non-empty and without whitespace", p)
			case len(tok) > 1 && strings.ContainsAny(tok, "*>"):
				return fmt.Errorf("publish allow pattern %q: the wildcards * and > must be whole tokens", p)
			case tok == ">" && i < len(tokens)-1:
				return fmt.Errorf("publish allow pattern %q: > must be the last token", p)
			}
		}
	}
	return nil
}

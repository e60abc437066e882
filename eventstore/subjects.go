package eventstore

import "strings"

// reservedPrefixes are the subject prefixes that belong to NATS and to
// Weft: JetStream's API and every other $-subject ($JS., $KV., $O.,
// $SYS., ...), request replies (_INBOX.) and Weft's own subjects (weft.:
// histories, results, timers, snapshots, direct replies and triggers).
var reservedPrefixes = []string{"$", "_INBOX.", "weft."}

// ReservedSubject reports whether subject (or a wildcard pattern) starts in
// a part of the subject space that belongs to NATS or Weft: workflows may
// neither listen nor publish there unless an operator allows it.
func ReservedSubject(subject string) bool {
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(subject, p) {
			return true
		}
	}
	return false
}

// ReservedPrefixes lists the prefixes ReservedSubject refuses, for
// messages: "$, _INBOX. and weft.".
func ReservedPrefixes() string {
	n := len(reservedPrefixes)
	return strings.Join(reservedPrefixes[:n-1], ", ") + " and " + reservedPrefixes[n-1]
}

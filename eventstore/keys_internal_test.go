package eventstore

import (
	"encoding/base64"
	"strings"
	"testing"
)

// A key an earlier version could store (it wrote every key as it is, and
// only a subject past the server's control line closed the connection)
// keeps the name it was stored by; a longer one is named by its hash.
func TestAKeyStoredBeforeHashingKeepsItsName(t *testing.T) {
	enc := base64.RawURLEncoding
	old := func(kind, scope, key string) string {
		return kind + ".v" + enc.EncodeToString([]byte(scope)) + ".v" + enc.EncodeToString([]byte(key))
	}
	for _, n := range []int{0, 10, 191, 192, 1000, 2000} {
		key := strings.Repeat("k", n)
		if got, want := slotKey("def", key), old("s", "def", key); got != want {
			t.Errorf("a key of %d bytes: named %.40s..., stored before as %.40s...", n, got, want)
		}
	}
	long := strings.Repeat("k", 5000)
	if got := flowKey("c", "def/step", long); len(got) > 100 || got == flowKey("c", "def/step", long[1:]) {
		t.Errorf("a key of 5000 bytes is named %.60s... (%d characters)", got, len(got))
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// weft def apply with a file that is not UTF-8 text (Latin-1, UTF-16)
// says so, naming where, rather than failing with the client's bare
// "internal: marshal message: string field contains invalid UTF-8".
func TestDefApplySaysAFileIsNotUTF8(t *testing.T) {
	addr := freeAddr(t)
	server := "--server=http://" + addr
	startServer(t, []string{"--addr", addr}, []string{server})
	dir := t.TempDir()
	for name, c := range map[string]struct{ src, want string }{
		"latin1.yaml": {"name: park\nsteps:\n  - { id: w, wait: { signal: go } }\n# caf\xe9\n", "is not UTF-8 text (byte 0xe9 at offset 59, line 4): save it as UTF-8"},
		"utf16.yaml":  {"\xff\xfen\x00a\x00", "is UTF-16 text: save it as UTF-8"},
	} {
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, []byte(c.src), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := runCLI(t, "def", "apply", file, server)
		if err == nil || !strings.Contains(err.Error(), file+" "+c.want) {
			t.Errorf("def apply %s: %v\n%s; want it refused saying %q", name, err, out, c.want)
		}
	}
	file := filepath.Join(dir, "ok.yaml")
	if err := os.WriteFile(file, []byte("name: park\nsteps:\n  - { id: w, wait: { signal: go } }\n# café\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "def", "apply", file, server); err != nil {
		t.Fatalf("def apply of UTF-8 text: %v\n%s", err, out)
	}
}

package definition

import (
	"strings"
	"testing"
	"time"
)

// CEL costs matches by the pattern's source: a 4 MiB string against
// .{999}! costs 800,000 of the 1,000,000 allowed, and took 22 s (Go's
// matcher runs ~1,000 threads per byte). It must fail fast instead.
func TestARegexWorkIsBounded(t *testing.T) {
	tmpl := compileTemplate(t, `"${ (input.s + input.s + input.s + input.s).matches(r'.{999}!') }"`, 0)
	t0 := time.Now()
	_, err := tmpl.Eval(inputS(1<<20, "a"))
	took := time.Since(t0)
	if err == nil || !strings.Contains(err.Error(), "matches") {
		t.Errorf("err = %v, want the matches work bound", err)
	}
	if took > 20*time.Second { // it fails before matching: the 22 s it took is what is bounded
		t.Errorf("took %v", took)
	}
	t.Logf("err=%v took %v", err, took)
	// Ordinary patterns on large strings still run.
	tmpl = compileTemplate(t, `"${ input.s.matches(r'^a+b?$') && input.s.matches('[a-z]+@example') == false }"`, 0)
	if v, err := tmpl.Eval(inputS(1<<20, "a")); err != nil || v != true {
		t.Errorf("ordinary patterns: %v, %v", v, err)
	}
}

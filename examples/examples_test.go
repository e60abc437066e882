package examples_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/weftworks/weft/orchestrator/definition"
)

// builtinTasks are the task types a stock weft server runs.
var builtinTasks = []string{"echo", "log", "http", "nats.publish"}

// problems renders a Parse error one problem per line.
func problems(err error) string {
	var perr *definition.Error
	if !errors.As(err, &perr) {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range perr.Problems {
		b.WriteString("\n\t" + p.String())
	}
	return b.String()
}

// TestExamplesParse checks that every examples/*.yaml is a valid definition
// named after its file that runs on a stock server: built-in task types
// only, and child workflows that are examples too.
func TestExamplesParse(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hello.yaml", "approval.yaml", "onboarding.yaml", "expense-approval.yaml", "fan-out.yaml"} {
		if !slices.Contains(files, want) {
			t.Errorf("examples/%s is missing", want)
		}
	}
	names := map[string]bool{}
	children := map[string][]string{}
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		d, err := definition.Parse(src)
		if err != nil {
			t.Errorf("examples/%s is not a valid definition:%s", file, problems(err))
			continue
		}
		if base := strings.TrimSuffix(file, ".yaml"); d.Name != base {
			t.Errorf("examples/%s: name is %q; name the file after the definition (%s.yaml)", file, d.Name, d.Name)
		}
		names[d.Name] = true
		children[file] = d.Children
		for s := range d.All() {
			if s.Kind == definition.KindTask && !slices.Contains(builtinTasks, s.Task) {
				t.Errorf("examples/%s: step %q uses task type %q; examples use only the built-in types %v so they run on a stock weft server",
					file, s.ID, s.Task, builtinTasks)
			}
		}
	}
	for file, kids := range children {
		for _, kid := range kids {
			if !names[kid] {
				t.Errorf("examples/%s starts child workflow %q, which is not an example", file, kid)
			}
		}
	}
}

// yamlBlock is a fenced yaml code block of a Markdown file.
type yamlBlock struct {
	line int // of the opening fence
	src  string
}

// yamlBlocks returns the ```yaml blocks of the Markdown text md.
func yamlBlocks(t *testing.T, md []byte) []yamlBlock {
	t.Helper()
	var blocks []yamlBlock
	var cur *yamlBlock
	var body strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(md))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fence := strings.TrimSpace(line)
		switch {
		case cur == nil && (fence == "```yaml" || fence == "```yml"):
			cur = &yamlBlock{line: n}
			body.Reset()
		case cur != nil && fence == "```":
			cur.src = body.String()
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("yaml block opened at line %d is never closed", cur.line)
	}
	return blocks
}

// TestDocsDefinitionsParse checks that every ```yaml block of
// docs/language.md that starts with name: is a valid definition, so the
// reference's examples stay runnable.
func TestDocsDefinitionsParse(t *testing.T) {
	const doc = "../docs/language.md"
	md, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, b := range yamlBlocks(t, md) {
		if !strings.HasPrefix(strings.TrimSpace(b.src), "name:") {
			continue
		}
		checked++
		if _, err := definition.Parse([]byte(b.src)); err != nil {
			t.Errorf("%s:%d: the definition in this yaml block is rejected:%s", doc, b.line, problems(err))
		}
	}
	// Guard against a change of format that would make this test vacuous.
	if checked < 10 {
		t.Errorf("%s: found only %d yaml blocks starting with name:, want at least 10", doc, checked)
	}
}

var (
	jsonFlagRE  = regexp.MustCompile(`--(input|payload) '([^']*)'`)
	startDefRE  = regexp.MustCompile(`weft start ([A-Za-z0-9_-]+)`)
	applyFileRE = regexp.MustCompile(`weft def apply -f (examples/\S+)`)
)

// TestReadmeCommands checks the commands of examples/README.md: the JSON
// given to --input and --payload parses, and the definitions it starts and
// the example files it applies exist.
func TestReadmeCommands(t *testing.T) {
	md, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(md)
	flags := jsonFlagRE.FindAllStringSubmatch(text, -1)
	if len(flags) == 0 {
		t.Fatal("examples/README.md shows no --input or --payload")
	}
	for _, m := range flags {
		if !json.Valid([]byte(m[2])) {
			t.Errorf("examples/README.md: --%s '%s' is not valid JSON", m[1], m[2])
		}
	}
	for _, m := range startDefRE.FindAllStringSubmatch(text, -1) {
		if _, err := os.Stat(m[1] + ".yaml"); err != nil {
			t.Errorf("examples/README.md starts %q, but there is no examples/%s.yaml", m[1], m[1])
		}
	}
	for _, m := range applyFileRE.FindAllStringSubmatch(text, -1) {
		if _, err := os.Stat(filepath.Join("..", m[1])); err != nil {
			t.Errorf("examples/README.md applies %s, which does not exist (paths are from the repository root)", m[1])
		}
	}
}

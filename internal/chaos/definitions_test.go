package chaos

import (
	"testing"

	"github.com/weftworks/weft/orchestrator/definition"
)

// Every definition the harness puts parses and validates.
func TestDefinitionsParse(t *testing.T) {
	sources := append([]string{triggerDefinition, cronDefinition("http://127.0.0.1:1", true), deadlineDefinition(deadlineShort),
		deadlineDefinition(deadlineLong), taskTimeoutDefinition, beatDefinition, ratelimitedDefinition(perSlow)}, staticDefinitions...)
	for i := range pausedDefinitions {
		sources = append(sources, pausedDefinition(i))
	}
	for _, src := range sources {
		if _, err := definition.Parse([]byte(src)); err != nil {
			t.Errorf("%v in:\n%s", err, src)
		}
	}
}

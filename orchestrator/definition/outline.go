package definition

// Outline returns the definition's steps as a tree of plain values (lists
// and maps of strings), for drawing it. Each step is a map with "id" and
// "kind" and, where they apply: "task" (the task type), "signal" (a
// wait's), "workflow" (a child's definition), "if" (the condition's
// source), "cases" (switch: a list of {"when", "steps"}), "default"
// (switch: steps), "branches" (parallel: a list of {"id", "steps"}),
// "steps" (the body of foreach and repeat) and "catch" (a list of
// {"errors", "steps"}).
func (d *Definition) Outline() []any {
	return outlineSteps(d.Steps)
}

func outlineSteps(steps []*Step) []any {
	out := make([]any, 0, len(steps))
	for _, s := range steps {
		out = append(out, outlineStep(s))
	}
	return out
}

func outlineStep(s *Step) map[string]any {
	m := map[string]any{"id": s.ID, "kind": string(s.Kind)}
	if s.If != nil {
		m["if"] = s.If.Source
	}
	switch s.Kind {
	case KindTask:
		m["task"] = s.Task
	case KindWait:
		m["signal"] = s.Wait.Signal
	case KindWorkflow:
		m["workflow"] = s.Workflow.Definition
	case KindSwitch:
		cases := make([]any, 0, len(s.Switch.Cases))
		for _, c := range s.Switch.Cases {
			cases = append(cases, map[string]any{"when": c.If.Source, "steps": outlineSteps(c.Then)})
		}
		m["cases"] = cases
		if s.Switch.Default != nil {
			m["default"] = outlineSteps(s.Switch.Default)
		}
	case KindParallel:
		branches := make([]any, 0, len(s.Parallel.Branches))
		for _, b := range s.Parallel.Branches {
			branches = append(branches, map[string]any{"id": b.Name, "steps": outlineSteps(b.Steps)})
		}
		m["branches"] = branches
	case KindForeach:
		m["steps"] = outlineSteps(s.Foreach.Do)
	case KindRepeat:
		m["steps"] = outlineSteps(s.Repeat.Do)
	}
	if s.Catch != nil {
		clauses := make([]any, 0, len(s.Catch))
		for _, c := range s.Catch {
			errs := make([]any, 0, len(c.Errors))
			for _, e := range c.Errors {
				errs = append(errs, e)
			}
			clauses = append(clauses, map[string]any{"errors": errs, "steps": outlineSteps(c.Do)})
		}
		m["catch"] = clauses
	}
	return m
}

package orchestrator

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/metrics"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// orchMetrics are the metrics an orchestrator records: the closes and the
// child starts it appends, how it decides, and the task types' backlog
// while it runs. Nil recorders record nothing.
type orchMetrics struct {
	reg       *prometheus.Registry
	workflows *metrics.Workflows
	orch      *metrics.Orchestrator
	// backlog is registered on reg while the orchestrator runs (when
	// registered: no other orchestrator of the process reports it).
	backlog    *metrics.Backlog
	registered bool
}

func newOrchMetrics(reg *prometheus.Registry, store *eventstore.Store) *orchMetrics {
	m := &orchMetrics{reg: reg, workflows: metrics.NewWorkflows(reg), orch: metrics.NewOrchestrator(reg)}
	if reg != nil {
		m.backlog = metrics.NewBacklog(store.TaskBacklogs)
	}
	return m
}

// reportBacklog reports the task types' backlog on the registry until
// stopBacklog; another orchestrator of the process may report it already.
func (m *orchMetrics) reportBacklog(o *Orchestrator) {
	if m.backlog == nil {
		return
	}
	if err := m.reg.Register(m.backlog); err != nil {
		o.log.Debug("task backlog reported by another orchestrator on this registry", "err", err)
		return
	}
	m.registered = true
}

// stopBacklog stops reporting the task types' backlog.
func (m *orchMetrics) stopBacklog() {
	if m.registered {
		m.reg.Unregister(m.backlog)
		m.registered = false
	}
}

// closedStatus is the status label of a terminal event ("" for others).
func closedStatus(t events.Type) string {
	switch t {
	case events.TypeWorkflowCompleted:
		return metrics.StatusCompleted
	case events.TypeWorkflowFailed:
		return metrics.StatusFailed
	case events.TypeWorkflowCanceled:
		return metrics.StatusCanceled
	}
	return ""
}

// countCloses counts the closes and suspensions among evs, just appended to st's history
// (so once per recorded close: a redelivered input decides nothing new).
func (m *orchMetrics) countCloses(st *workflow.State, evs []events.Event) {
	if m.workflows == nil {
		return
	}
	for _, ev := range evs {
		if status := closedStatus(ev.Type); status != "" {
			m.workflows.Closed(st.Definition, status, ev.Time.Sub(st.Created))
		}
		if ev.Type == events.TypeStepSuspended {
			m.workflows.Suspended(st.Definition)
		}
	}
}

// countBrokenClose counts the failure just appended to wf, a workflow
// that cannot go on, whose state is not folded: its definition and start
// come from its first record (a corrupt one leaves the definition empty).
func (sh *shard) countBrokenClose(ctx context.Context, wf string) {
	if sh.o.metrics.workflows == nil {
		return
	}
	at := sh.o.cfg.Now().UTC()
	def, created := "", at
	if first, err := sh.o.store.First(ctx, wf); err == nil && first.Err == nil {
		if ws := first.Record.Events[0].WorkflowStarted; ws != nil {
			def, created = ws.Definition, first.Record.Events[0].Time
		}
	}
	sh.o.metrics.workflows.Closed(def, metrics.StatusFailed, at.Sub(created))
}

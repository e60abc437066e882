package chaos

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Kinds of parts the chaos loop kills.
const (
	kindNATS         = "nats"
	kindOrchestrator = "orch"
	kindExecutor     = "exec"
	kindAPI          = "api"
)

// proc is one supervised child process: it is started again after a
// pause when it exits without having been killed on purpose.
type proc struct {
	name    string
	kind    string
	path    string
	args    []string
	logPath string
	sup     *supervisor

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	want    bool          // should be running
	starts  int
	exits   int // exits that were not asked for
	lastErr error
}

// supervisor owns the child processes of a run.
type supervisor struct {
	logf func(format string, args ...any)

	mu      sync.Mutex
	closing bool
	procs   []*proc
	wg      sync.WaitGroup // restarts after unexpected exits
}

func (s *supervisor) add(p *proc) *proc {
	p.sup = s
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p
}

func (s *supervisor) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// closeAll kills every process group and waits for them to exit.
func (s *supervisor) closeAll() {
	s.mu.Lock()
	s.closing = true
	procs := append([]*proc(nil), s.procs...)
	s.mu.Unlock()
	s.wg.Wait()
	for _, p := range procs {
		p.kill()
	}
}

// all returns the processes.
func (s *supervisor) all() []*proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*proc(nil), s.procs...)
}

// unexpectedExits sums the exits nobody asked for.
func (s *supervisor) unexpectedExits() int {
	s.mu.Lock()
	procs := append([]*proc(nil), s.procs...)
	s.mu.Unlock()
	n := 0
	for _, p := range procs {
		p.mu.Lock()
		n += p.exits
		p.mu.Unlock()
	}
	return n
}

// start starts the process; it is a no-op when it runs already.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sup.isClosing() {
		return errors.New("chaos: shutting down")
	}
	p.want = true
	if p.cmd != nil {
		return nil
	}
	return p.startLocked()
}

func (p *proc) startLocked() error {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	setProcAttrs(cmd)
	p.starts++
	fmt.Fprintf(logf, "%s%d of %s at %s\n", startMarker, p.starts, p.name, time.Now().Format(time.RFC3339Nano))
	if err := cmd.Start(); err != nil {
		logf.Close()
		p.lastErr = err
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "=== chaos: %s exited at %s: %v\n", p.name, time.Now().Format(time.RFC3339Nano), err)
		logf.Close()
		p.exited(cmd, err)
		close(done)
	}()
	return nil
}

// exited clears the process and restarts it when its exit was not asked for.
func (p *proc) exited(cmd *exec.Cmd, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != cmd {
		return
	}
	p.cmd = nil
	if !p.want {
		return
	}
	p.exits++
	p.lastErr = err
	s := p.sup
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	s.logf("%s exited on its own (%v); restarting it in 1s (see %s)", p.name, err, p.logPath)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		time.Sleep(time.Second)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.want && p.cmd == nil && !s.isClosing() {
			if err := p.startLocked(); err != nil {
				s.logf("restart %s: %v", p.name, err)
			}
		}
	}()
}

// kill sends SIGKILL to the process group and waits until it has exited.
func (p *proc) kill() {
	p.mu.Lock()
	p.want = false
	cmd, done := p.cmd, p.done
	if cmd != nil {
		_ = killGroup(cmd)
	}
	p.mu.Unlock()
	if done != nil {
		<-done
	}
}

// startMarker begins the log lines of each start of a process.
const startMarker = "=== chaos: start #"

// logged reports whether the log of the current start holds text.
func (p *proc) logged(text string) bool {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return false
	}
	s := string(data)
	if i := strings.LastIndex(s, startMarker); i >= 0 {
		s = s[i:]
	}
	return strings.Contains(s, text)
}

// running reports whether the process is up.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

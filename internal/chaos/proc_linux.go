//go:build linux

package chaos

import (
	"os/exec"
	"syscall"
)

// setProcAttrs puts the child in a process group of its own, so that a
// kill reaches everything it started, and has the kernel kill it should
// the harness itself die.
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup sends SIGKILL to the process group of cmd.
func killGroup(cmd *exec.Cmd) error {
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

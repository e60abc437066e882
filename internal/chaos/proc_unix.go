//go:build unix && !linux

package chaos

import (
	"os/exec"
	"syscall"
)

// setProcAttrs puts the child in a process group of its own, so that a
// kill reaches everything it started.
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killGroup sends SIGKILL to the process group of cmd.
func killGroup(cmd *exec.Cmd) error {
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

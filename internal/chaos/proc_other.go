//go:build !unix

package chaos

import "os/exec"

// setProcAttrs has nothing to set where there are no process groups.
func setProcAttrs(*exec.Cmd) {}

// killGroup kills the process of cmd.
func killGroup(cmd *exec.Cmd) error {
	return cmd.Process.Kill()
}

package testkit

import (
	"os/exec"
	"syscall"
)

// DiesWithTest makes a server a test starts end with the test process, also when the test binary is killed
// (a timeout): such a process would otherwise outlive it and hold its ports.
func DiesWithTest(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

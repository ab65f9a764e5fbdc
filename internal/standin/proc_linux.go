package standin

import "syscall"

// sysProcAttr makes the kernel kill a stand-in when the test binary dies,
// even by SIGKILL or a test timeout, so no server outlives its tests.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

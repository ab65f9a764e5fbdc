//go:build !linux

package standin

import "syscall"

// sysProcAttr is empty where there is no parent-death signal; Main and
// Server.Stop still stop every stand-in of a test run that ends normally.
func sysProcAttr() *syscall.SysProcAttr { return nil }

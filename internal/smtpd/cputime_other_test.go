//go:build !linux

package smtpd

import "time"

// threadCPU is only measured on Linux; elsewhere tests use wall time.
func threadCPU() (time.Duration, bool) { return 0, false }

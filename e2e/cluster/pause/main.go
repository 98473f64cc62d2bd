// Command pause is the e2e cluster's pod sandbox ("pause") process: it holds
// the pod's namespaces, reaps orphaned children and exits on SIGINT/SIGTERM.
// Built statically by e2e/cluster/build.sh and packed into a local image,
// so the node never pulls a sandbox image from outside.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			for {
				var ws syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}

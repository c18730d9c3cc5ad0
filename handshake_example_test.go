//go:build unix || windows

package tokenpipe_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"time"

	"github.com/tokenpipe/tokenpipe"
)

// A parent starts a daemon and waits at most ten seconds for it to come up.
func ExampleStartAndWait() {
	cmd := daemonCommand() // runs exampleDaemon: exec.Command("mydaemon") in real life
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := tokenpipe.StartAndWait(ctx, cmd, "MYD_READY_FD")
	switch {
	case err == nil:
		fmt.Println("daemon ready on", addr)
	case errors.Is(err, tokenpipe.ErrChildFailed):
		fmt.Println("daemon failed:", addr) // addr holds the reason here
		return
	case errors.Is(err, tokenpipe.ErrChildExited):
		fmt.Println("daemon exited before it was ready:", err) // with its exit status
		return
	case errors.Is(err, tokenpipe.ErrChildKilled):
		fmt.Println("daemon not ready in ten seconds: killed it")
		return
	default:
		fmt.Println("daemon not started:", err)
		return
	}
	// The daemon runs on and is ours: stop it here, as the example ends.
	cmd.Process.Kill()
	cmd.Wait()
	// Output: daemon ready on 127.0.0.1:8080
}

// exampleDaemon is the daemon of ExampleStartAndWait.
func exampleDaemon() int {
	// ... bind, load, initialise; on failure:
	//	tokenpipe.Fail("MYD_READY_FD", err)
	//	return 1
	if err := tokenpipe.Ready("MYD_READY_FD", "127.0.0.1:8080"); err != nil &&
		!errors.Is(err, tokenpipe.ErrNotExported) {
		log.Print(err) // the parent went away: nobody to tell
	}
	holdStdin() // serve; here, until the parent kills us
	return 0
}

func init() { register("example-daemon", exampleDaemon) }

// daemonCommand returns a command that runs this program again as the
// daemon, which calls exampleDaemon: in this example the program is the test
// binary.
func daemonCommand() *exec.Cmd {
	cmd, err := newHelperCommand("example-daemon")
	if err != nil {
		log.Fatal(err)
	}
	// The daemon serves until its standard input closes, which cmd.Wait does.
	if _, err := cmd.StdinPipe(); err != nil {
		log.Fatal(err)
	}
	return cmd
}

// A daemon run by hand, not by a waiting parent, has nobody to report to:
// Ready says so with ErrNotExported, which the daemon ignores.
func ExampleReady() {
	os.Unsetenv("MYD_READY_FD")
	err := tokenpipe.Ready("MYD_READY_FD", "127.0.0.1:8080")
	fmt.Println(errors.Is(err, tokenpipe.ErrNotExported))
	// Output: true
}

// A daemon that cannot start says why; the parent's StartAndWait returns
// the reason.
func ExampleFail() {
	cmd := failingDaemonCommand() // runs exampleFailingDaemon
	reason, err := tokenpipe.StartAndWait(context.Background(), cmd, "MYD_READY_FD")
	fmt.Println(errors.Is(err, tokenpipe.ErrChildFailed), reason, cmd.ProcessState.ExitCode())
	// Output: true listen tcp 127.0.0.1:8080: address already in use 1
}

// exampleFailingDaemon is the daemon of ExampleFail.
func exampleFailingDaemon() int {
	err := errors.New("listen tcp 127.0.0.1:8080: address already in use")
	tokenpipe.Fail("MYD_READY_FD", err)
	return 1
}

func init() { register("example-failing-daemon", exampleFailingDaemon) }

func failingDaemonCommand() *exec.Cmd {
	cmd, err := newHelperCommand("example-failing-daemon")
	if err != nil {
		log.Fatal(err)
	}
	return cmd
}

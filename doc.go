// Package tokenpipe tells a parent process, reliably and quickly, whether a
// daemon it started came up: the start-up handshake in one call on each
// side. It grew from a Go port of Bitcoin Core's TokenPipe (the pipe of
// one-byte tokens behind bitcoind -daemonwait), runs on Unix and Windows,
// and speaks sd_notify too.
//
// # The handshake
//
// The parent starts the daemon and waits for its word:
//
//	cmd := exec.Command("/usr/local/bin/mydaemon")
//	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
//	defer cancel()
//	addr, err := tokenpipe.StartAndWait(ctx, cmd, "MYD_READY_FD")
//	switch {
//	case err == nil: // ready; addr is its message. cmd.Process.Release(), or cmd.Wait() later
//	case errors.Is(err, tokenpipe.ErrChildFailed): // it said why: addr is the reason
//	case errors.Is(err, tokenpipe.ErrChildExited): // it exited first; err has its exit status
//	case errors.Is(err, tokenpipe.ErrChildKilled): // no word before ctx ended: killed
//	default: // it could not be started
//	}
//
// The daemon reports once it serves, or says why it cannot:
//
//	ln, err := net.Listen("tcp", "127.0.0.1:8080")
//	if err != nil {
//		tokenpipe.Fail("MYD_READY_FD", err)
//		os.Exit(1)
//	}
//	tokenpipe.Ready("MYD_READY_FD", ln.Addr().String())
//
// A daemon that dies before it reports is never taken for a ready one
// (bitcoind takes it for one): end of stream is an error, never a token. A
// child that did not come up has been waited for when StartAndWait returns.
//
// # Supervisors
//
// The same Ready and Fail report to s6, whose notification-fd waits for a
// newline that a ready report ends with and a failure report never holds,
// and on Unix to systemd (Type=notify) and start-stop-daemon --notify-await,
// which set NOTIFY_SOCKET. After Ready a daemon keeps talking to them with
// Notify (WATCHDOG=1 at the interval WatchdogInterval gives, STOPPING=1). In
// turn StartAndWait understands a daemon that speaks only sd_notify, such as
// Redis with --supervised systemd.
//
// # The pipe
//
// Underneath is a pipe of one-byte tokens, for a protocol of your own: Make
// a pipe, hand an end to a child with ExportTo, which the child takes over
// with FromEnv, and use TokenWrite, TokenRead and TokenReadContext, which a
// context can end; reads return io.EOF once every write end is closed. Ends
// are close-on-exec (Unix) or not inheritable (Windows), so they reach only
// the children they are exported to.
//
// Every function and method is safe for concurrent use. The README has the
// wire format, which any language can speak, and what each supervisor needs.
//
// On Linux, the first read that has to wait starts one goroutine, which
// reads /proc/stat when a read asks how idle the machine is (to decide
// whether to spin before parking) and lives as long as the process: a
// goroutine-leak check such as goleak's needs
// goleak.IgnoreAnyFunction("github.com/tokenpipe/tokenpipe.takeSamples").
package tokenpipe

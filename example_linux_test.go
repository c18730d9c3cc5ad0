package tokenpipe_test

import (
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tokenpipe/tokenpipe"
)

// A daemon under systemd with Type=notify and WatchdogSec=: it reports ready,
// pings the watchdog at half the interval systemd asks for, and says
// STOPPING=1 when it shuts down. (Here a socket of the example's own stands
// in for systemd, and the daemon serves for three pings.)
func ExampleNotify() {
	manager := standInForSystemd(20 * time.Millisecond)
	defer manager.Close()

	// The daemon.
	if err := tokenpipe.Ready("MYD_READY_FD", "serving"); err != nil {
		log.Fatal(err)
	}
	interval, err := tokenpipe.WatchdogInterval()
	if err != nil {
		log.Fatal(err)
	}
	if interval > 0 {
		ticker := time.NewTicker(interval / 2)
		defer ticker.Stop()
		for range 3 { // a real daemon: until it is told to stop
			<-ticker.C
			tokenpipe.Notify("WATCHDOG=1")
		}
	}
	tokenpipe.Notify("STOPPING=1\nSTATUS=shutting down")

	for range 5 {
		fmt.Printf("%q\n", manager.next())
	}
	// Output:
	// "STATUS=serving\nREADY=1\n"
	// "WATCHDOG=1"
	// "WATCHDOG=1"
	// "WATCHDOG=1"
	// "STOPPING=1\nSTATUS=shutting down"
}

// systemd is the example's stand-in for systemd's notification socket.
type systemd struct {
	*net.UnixConn
	dir string
}

// standInForSystemd listens for datagrams and sets the environment as
// systemd does for a service with WatchdogSec=watchdog.
func standInForSystemd(watchdog time.Duration) systemd {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	addr := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		log.Fatal(err)
	}
	tokenpipe.ResetReports()
	os.Unsetenv("MYD_READY_FD")
	os.Setenv("NOTIFY_SOCKET", addr)
	os.Setenv("WATCHDOG_USEC", strconv.FormatInt(watchdog.Microseconds(), 10))
	os.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	return systemd{conn, dir}
}

// next returns the next message the daemon sent.
func (s systemd) next() string {
	buf := make([]byte, 4096)
	s.SetReadDeadline(time.Now().Add(hangGuard))
	n, err := s.Read(buf)
	if err != nil {
		return err.Error()
	}
	return string(buf[:n])
}

// Close closes the socket and clears what standInForSystemd set.
func (s systemd) Close() error {
	for _, key := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		os.Unsetenv(key)
	}
	tokenpipe.ResetReports()
	os.RemoveAll(s.dir)
	return s.UnixConn.Close()
}

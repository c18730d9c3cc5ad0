package tokenpipe

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The sd_notify(3) protocol, as systemd and Debian's start-stop-daemon speak
// it: one datagram per message to the AF_UNIX socket named by NOTIFY_SOCKET,
// holding newline-separated KEY=VALUE lines. This file formats and parses
// messages; sending and receiving them is per OS (sdnotify_unix.go,
// sdnotify_other.go).
//
// References: https://www.freedesktop.org/software/systemd/man/sd_notify.html,
// systemd's src/core/manager.c (manager_dispatch_notify_fd) and dpkg's
// utils/start-stop-daemon.c (wait_for_notify).

// notifySocketEnv names the socket a supervisor speaking sd_notify listens on.
const notifySocketEnv = "NOTIFY_SOCKET"

// maxNotifyMessage is the longest message sent or accepted. systemd reads
// notifications into a buffer of NOTIFY_BUFFER_MAX (PIPE_BUF, 4096) bytes and
// ignores longer ones, so a longer status would lose the READY=1 with it.
const maxNotifyMessage = 4096

// failErrno is the ERRNO= that Fail sends when its reason wraps no errno:
// start-stop-daemon fails on any ERRNO= and prints its strerror, and EIO
// ("Input/output error") is the conventional catch-all. sd_notify has no way
// to say "failed" without an errno.
const failErrno = 5

// notifyState is what the sd_notify datagrams received so far say.
type notifyState struct {
	ready  bool   // READY=1 came first
	failed bool   // an ERRNO= line came first
	errno  int    // its value, or -1 if it is not a number (see parseErrno)
	value  string // the ERRNO= line's value as sent
	status string // the last STATUS= value
}

// notifyResult is what the listener makes of its datagrams: a decisive state,
// or an error saying why the socket cannot be read.
type notifyResult struct {
	state notifyState
	err   error
}

// decided reports whether the datagrams so far decide the wait.
func (s *notifyState) decided() bool {
	return s.ready || s.failed
}

// parse adds what one datagram says to s, line by line. The first line that
// decides counts, as start-stop-daemon (wait_for_notify) reads them, and
// later ones are ignored, but for STATUS=: READY=1 (exactly) is ready; any line that begins with ERRNO= is a
// failure, whatever follows (start-stop-daemon exits at once on every
// ERRNO= line: "program failed to initialize" with the errno it parses, or
// "cannot parse errno notification"). systemd differs: it only records the
// errno (systemctl status shows it) and waits on for READY=1 or the
// process's exit.
//
// A datagram that holds a NUL byte before its last is ignored whole, as
// systemd does (src/shared/notify-recv.c: it permits one trailing NUL, which
// C senders that send sizeof "READY=1" bytes leave; start-stop-daemon reads
// up to the first); other lines and keys are ignored one by one. Nothing a
// datagram holds can make parse fail.
func (s *notifyState) parse(datagram []byte) {
	datagram = bytes.TrimSuffix(datagram, []byte{0})
	if bytes.IndexByte(datagram, 0) >= 0 {
		return
	}
	for line := range bytes.SplitSeq(datagram, []byte("\n")) {
		key, value, ok := bytes.Cut(line, []byte("="))
		switch {
		case !ok:
		case string(key) == "STATUS":
			s.status = strings.ToValidUTF8(string(value), "\uFFFD")
		case s.decided():
		case string(key) == "READY":
			s.ready = string(value) == "1"
		case string(key) == "ERRNO":
			s.failed, s.errno, s.value = true, parseErrno(string(value)), string(value)
		}
	}
}

// parseErrno reads an ERRNO= value as start-stop-daemon's parse_unsigned
// does (C's strtol in base 10: leading white space and a sign allowed,
// nothing after the digits, 0 to INT_MAX), and returns -1 where that fails.
func parseErrno(v string) int {
	v = strings.TrimLeft(v, " \t\n\v\f\r") // isspace in the C locale
	neg := strings.HasPrefix(v, "-")
	if neg || strings.HasPrefix(v, "+") {
		v = v[1:]
	}
	if v == "" || strings.TrimLeft(v, "0123456789") != "" {
		return -1
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || (neg && n != 0) {
		return -1
	}
	return int(n)
}

// formatNotify makes the message that reports status and then, if errno is
// not zero, a failure with that errno, and otherwise, if ready, readiness.
// STATUS= comes first, so that a receiver that acts on the first decisive
// line (start-stop-daemon) has seen it; it is left out when status is empty.
//
// status is made one line (newlines and NUL bytes become spaces, so that a
// reason cannot inject READY=1) and cut, at a character boundary, so that the
// message fits maxNotifyMessage.
func formatNotify(status string, errno int, ready bool) []byte {
	var tail string
	switch {
	case errno != 0:
		tail = "ERRNO=" + strconv.Itoa(errno) + "\n"
	case ready:
		tail = "READY=1\n"
	}
	if status == "" {
		return []byte(tail)
	}
	const key = "STATUS="
	status = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == 0 {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(status, "\uFFFD"))
	if room := maxNotifyMessage - len(key) - len("\n") - len(tail); len(status) > room {
		for room > 0 && !utf8.RuneStart(status[room]) {
			room--
		}
		status = status[:room]
	}
	return []byte(key + status + "\n" + tail)
}

// notifyReport sends a report to the supervisor that NOTIFY_SOCKET names,
// if it is set and not empty, and takes the variable out of the
// environment, so that the daemon's own children do not report for it; it
// keeps the address for Notify. taken says whether there was one. Where
// there are no sd_notify sockets (Windows) it does nothing.
func notifyReport(status string, errno int, ready bool) (taken bool, err error) {
	if !notifySupported {
		return false, nil
	}
	addr := takeNotifySocket()
	if addr == "" {
		return false, nil
	}
	return true, sendNotify(addr, formatNotify(status, errno, ready))
}

// notifyMu guards NOTIFY_SOCKET in the environment and notifyTaken, so that
// Notify finds the socket in one or the other; it is never held while a
// report is written (TestNotifyBesideABlockedReady).
var notifyMu sync.Mutex

// notifyTaken is the NOTIFY_SOCKET that Ready or Fail took out of the
// environment, for Notify.
var notifyTaken string

// takeNotifySocket takes NOTIFY_SOCKET out of the environment and keeps it
// for Notify, unless it is empty.
func takeNotifySocket() string {
	notifyMu.Lock()
	defer notifyMu.Unlock()
	addr := os.Getenv(notifySocketEnv)
	os.Unsetenv(notifySocketEnv)
	if addr != "" {
		notifyTaken = addr
	}
	return addr
}

// notifySocket returns NOTIFY_SOCKET, or the one Ready or Fail took.
func notifySocket() string {
	notifyMu.Lock()
	defer notifyMu.Unlock()
	if addr := os.Getenv(notifySocketEnv); addr != "" {
		return addr
	}
	return notifyTaken
}

// Notify sends state to the service manager, as sd_notify(3) does: one
// datagram of newline-separated KEY=VALUE lines (WATCHDOG=1, STOPPING=1,
// RELOADING=1, STATUS=...) to the socket that NOTIFY_SOCKET names, or, once
// Ready or Fail have taken that variable out of the environment, to the
// socket they took: a daemon keeps talking to systemd after Ready, while
// the children it starts never see NOTIFY_SOCKET. It does not check the
// keys (see sd_notify(3)).
//
// Notify fails with an error matching ErrNotExported when there never was a
// socket (the process was not started by a service manager; always on
// Windows, which has none), and with one matching os.ErrInvalid for a state
// that sd_notify cannot carry: empty, holding a NUL byte, or longer than the
// 4096 bytes systemd reads. Other errors are as for Ready's NOTIFY_SOCKET.
// Like Ready, it never waits for an answer, and blocks only while the
// manager's queue is full, for at most 5 seconds. It is safe for concurrent
// use, and with Ready and Fail.
func Notify(state string) error {
	const op = "Notify"
	switch {
	case state == "":
		return fmt.Errorf("tokenpipe: %s: empty state: %w", op, os.ErrInvalid)
	case strings.IndexByte(state, 0) >= 0:
		return fmt.Errorf("tokenpipe: %s: state holds a NUL byte, which makes systemd drop it: %w", op, os.ErrInvalid)
	case len(state) > maxNotifyMessage:
		return fmt.Errorf("tokenpipe: %s: state of %d bytes, more than the %d that systemd reads: %w", op, len(state), maxNotifyMessage, os.ErrInvalid)
	}
	addr := notifySocket()
	switch {
	case !notifySupported:
		return fmt.Errorf("tokenpipe: %s: sd_notify is not available on this system: %w", op, ErrNotExported)
	case addr == "":
		return fmt.Errorf("tokenpipe: %s: %s is not set, and no Ready or Fail took it: %w", op, notifySocketEnv, ErrNotExported)
	}
	if err := sendNotify(addr, []byte(state)); err != nil {
		return fmt.Errorf("tokenpipe: %s: %w", op, err)
	}
	return nil
}

// WatchdogInterval returns how often the service manager expects WATCHDOG=1
// from this process (systemd's WatchdogSec=): WATCHDOG_USEC, when
// WATCHDOG_PID is unset or names this process, as sd_watchdog_enabled(3)
// reads them. It returns 0 when no watchdog is asked of this process, and
// an error naming the variable and its value, matching os.ErrInvalid, when a
// value is not a positive decimal number. Send Notify("WATCHDOG=1") at half
// the interval, as sd_watchdog_enabled(3) advises.
func WatchdogInterval() (time.Duration, error) {
	const op = "WatchdogInterval"
	usec, ok := os.LookupEnv("WATCHDOG_USEC")
	if !ok {
		return 0, nil
	}
	// In sd_watchdog_enabled's order: a bad WATCHDOG_USEC is an error even
	// where WATCHDOG_PID names another process.
	n, err := strconv.ParseUint(usec, 10, 64)
	if err != nil || n == 0 || n > math.MaxInt64/uint64(time.Microsecond) {
		return 0, fmt.Errorf("tokenpipe: %s: WATCHDOG_USEC=%q is not a positive number of microseconds: %w", op, usec, os.ErrInvalid)
	}
	if pid, ok := os.LookupEnv("WATCHDOG_PID"); ok {
		p, err := strconv.ParseUint(pid, 10, 31)
		if err != nil || p == 0 {
			return 0, fmt.Errorf("tokenpipe: %s: WATCHDOG_PID=%q is not a process id: %w", op, pid, os.ErrInvalid)
		}
		if int(p) != os.Getpid() {
			return 0, nil // the watchdog is another process's
		}
	}
	return time.Duration(n) * time.Microsecond, nil
}

// errnoCause describes the ERRNO= line that decided: with the errno's text
// and matching it where it is a positive number.
func (s *notifyState) errnoCause() error {
	switch {
	case s.errno > 0:
		return fmt.Errorf("ERRNO=%d: %w", s.errno, errnoError(s.errno))
	case s.errno == 0:
		return errors.New("ERRNO=0")
	}
	return fmt.Errorf("ERRNO=%q, which is not a number", s.value)
}

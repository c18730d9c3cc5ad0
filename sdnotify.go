package tokenpipe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
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
// A datagram that contains a NUL byte is ignored whole, as systemd does;
// other lines and keys are ignored one by one. Nothing a datagram holds can
// make parse fail.
func (s *notifyState) parse(datagram []byte) {
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
// if it is set and not empty, and unsets it, so that the daemon's own
// children do not report for it. sent says whether the report went out; err
// names NOTIFY_SOCKET. Where there are no sd_notify sockets (Windows) it
// does nothing.
func notifyReport(status string, errno int, ready bool) (sent bool, err error) {
	if !notifySupported {
		return false, nil
	}
	addr := os.Getenv(notifySocketEnv)
	os.Unsetenv(notifySocketEnv)
	if addr == "" {
		return false, nil
	}
	if err := sendNotify(addr, formatNotify(status, errno, ready)); err != nil {
		return false, err
	}
	return true, nil
}

// concludeNotify turns a decisive sd_notify result into StartAndWait's
// result, waiting for the child where the outcome says so, as conclude does
// for a pipe report: ERRNO= is a failure (reported as the last STATUS=,
// with the errno), READY=1 readiness with the last STATUS= as the message.
func (h *handshake) concludeNotify(ctx context.Context, res notifyResult) (string, error) {
	if res.err != nil {
		h.killAndReap()
		return "", fmt.Errorf("%w (killed the child: %s)", res.err, h.status())
	}
	status := cleanMessage(res.state.status)
	if !res.state.failed {
		return status, nil
	}
	return h.failed(ctx, status, reasonOrNone(status), res.state.errnoCause())
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

// exitedChan returns a channel that is closed once the child has exited, or
// at once where its exit cannot be watched: there the end of the pipe is
// taken for the child's exit, as it is without sd_notify.
func (h *handshake) exitedChan() <-chan struct{} {
	if h.exit != nil {
		return h.exit.exitedChan()
	}
	c := make(chan struct{})
	close(c)
	return c
}

package tokenpipe

import (
	"bytes"
	"context"
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
	ready  bool   // READY=1 was seen
	errno  int    // the last ERRNO= with a positive value, or 0
	status string // the last STATUS= value
}

// notifyResult is what the listener makes of its datagrams: a decisive state,
// or an error saying why the socket cannot be read.
type notifyResult struct {
	state notifyState
	err   error
}

// decided reports whether the datagrams so far decide the wait: an ERRNO=
// (failure) or a READY=1 (ready). A failure decides even after READY=1 in the
// same datagram; the first decision is the one that counts.
func (s *notifyState) decided() bool {
	return s.ready || s.errno != 0
}

// parse adds what one datagram says to s. A datagram that contains a NUL
// byte is ignored whole, as systemd does; lines that are not KEY=VALUE, keys
// that are not READY, STATUS or ERRNO, and values that do not parse (READY=0,
// ERRNO=abc, ERRNO=0) are ignored one by one. Nothing a datagram holds can
// make parse fail.
func (s *notifyState) parse(datagram []byte) {
	if bytes.IndexByte(datagram, 0) >= 0 {
		return
	}
	for line := range bytes.SplitSeq(datagram, []byte("\n")) {
		key, value, ok := bytes.Cut(line, []byte("="))
		if !ok {
			continue
		}
		switch string(key) {
		case "READY":
			if string(value) == "1" {
				s.ready = true
			}
		case "STATUS":
			s.status = strings.ToValidUTF8(string(value), "\uFFFD")
		case "ERRNO":
			// A positive decimal that fits an errno, however written
			// (start-stop-daemon takes "05" and "+5" for 5, and fails on
			// them); ERRNO=0 says "no error", and a value that is no number
			// says nothing.
			if n, err := strconv.ParseInt(string(value), 10, 32); err == nil && n > 0 {
				s.errno = int(n)
			}
		}
	}
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
	if res.state.errno == 0 {
		return status, nil
	}
	cause := fmt.Errorf("ERRNO=%d: %w", res.state.errno, errnoError(res.state.errno))
	return h.failed(ctx, status, reasonOrNone(status), cause)
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

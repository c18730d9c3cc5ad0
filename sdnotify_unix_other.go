//go:build unix && !linux

package tokenpipe

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Only Linux attaches the sender's credentials to every datagram
// (SO_PASSCRED); elsewhere the socket's private directory (mode 0700) is what
// keeps other users out.

const credentialsRequired = false

const credentialsSize = 0

func passCredentials(c syscall.RawConn) error { return nil }

func parseCredentials(h *unix.Cmsghdr, data []byte) (uid int, ok bool) { return 0, false }

// childIDs returns the user and group that attr makes the child run as; ok
// is false where it sets none.
func childIDs(attr *syscall.SysProcAttr) (uid, gid int, ok bool) {
	if attr == nil || attr.Credential == nil {
		return 0, 0, false
	}
	return int(attr.Credential.Uid), int(attr.Credential.Gid), true
}

// closeSocket closes the listener's socket as it is. Outside Linux,
// shutdown(SHUT_RD) does not serve to empty a datagram socket first: macOS
// refuses it on an unconnected socket (ENOTCONN) and senders go on; on the
// BSDs every later receive returns 0 bytes, and FreeBSD disposes of what is
// queued, descriptors included, in the thread that shuts it down. So what
// is queued goes with the socket, whose close the listener's close waits for
// only so long.
func (l *notifyListener) closeSocket() error { return l.conn.Close() }

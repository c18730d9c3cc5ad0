package tokenpipe

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// credentialsRequired says whether a datagram without the sender's
// credentials is dropped: on Linux, with SO_PASSCRED set, the kernel attaches
// them to every datagram.
const credentialsRequired = true

// credentialsSize is the size of the credentials a datagram carries.
const credentialsSize = unix.SizeofUcred

// passCredentials asks the kernel to attach the sender's credentials to every
// datagram the socket receives.
func passCredentials(c syscall.RawConn) error {
	var err error
	if ctlErr := c.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); ctlErr != nil {
		return ctlErr
	}
	if err != nil {
		return os.NewSyscallError("setsockopt(SO_PASSCRED)", err)
	}
	return nil
}

// parseCredentials returns the sender's user id if h and data are its
// credentials.
func parseCredentials(h *unix.Cmsghdr, data []byte) (uid int, ok bool) {
	if h.Level != unix.SOL_SOCKET || h.Type != unix.SCM_CREDENTIALS || len(data) < unix.SizeofUcred {
		return 0, false
	}
	cred, err := unix.ParseUnixCredentials(&unix.SocketControlMessage{Header: *h, Data: data})
	if err != nil {
		return 0, false
	}
	return int(cred.Uid), true
}

// recvFlags makes recvmsg mark the descriptors it installs close-on-exec at
// once, so that no child started meanwhile inherits them.
const recvFlags = unix.MSG_CMSG_CLOEXEC

// childIDs returns the user and group that attr makes the child run as, as
// this process sees them (the kernel's credentials on a datagram are mapped
// into the receiver's user namespace): attr.Credential's, mapped through
// attr's mappings where the child gets a user namespace of its own. ok is
// false where attr sets no user, or one the mappings do not cover (Start
// then fails).
func childIDs(attr *syscall.SysProcAttr) (uid, gid int, ok bool) {
	if attr == nil || attr.Credential == nil {
		return 0, 0, false
	}
	uid, gid = int(attr.Credential.Uid), int(attr.Credential.Gid)
	if attr.Cloneflags&syscall.CLONE_NEWUSER == 0 {
		return uid, gid, true
	}
	uid, uok := mapID(attr.UidMappings, uid)
	gid, gok := mapID(attr.GidMappings, gid)
	return uid, gid, uok && gok
}

// mapID maps id in a child's user namespace to this process's.
func mapID(mappings []syscall.SysProcIDMap, id int) (int, bool) {
	for _, m := range mappings {
		if id >= m.ContainerID && id-m.ContainerID < m.Size {
			return m.HostID + id - m.ContainerID, true
		}
	}
	return 0, false
}

// closeSocket closes the listener's socket, whose receive goroutine has
// returned, so that its last close drops no descriptor if it can: the kernel
// closes those of datagrams still queued in the thread that closes the
// socket, where one that blocks would hold it
// (TestNotifyListenerDescriptorQueuedAtClose). shutdown(SHUT_RD) stops new
// datagrams (their senders get EPIPE); those queued are received, at most
// maxDrained, and their descriptors handed to the closing goroutines as far
// as there is room. What is left goes with the socket, whose close the
// listener's close waits for only so long.
func (l *notifyListener) closeSocket() error {
	if rc, err := l.conn.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			unix.Shutdown(int(fd), unix.SHUT_RD)
			r := receiver{buf: make([]byte, 1), oob: make([]byte, oobSize), l: l}
			for i := 0; i < maxDrained && l.closer.hasRoom() && r.recv(fd); i++ {
				l.closer.add(r.fds)
				if r.err != nil {
					break
				}
			}
		})
	}
	return l.conn.Close()
}

package process

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// User is the identity a container's processes run as.
type User struct {
	UID, GID uint32
}

// ResolveUser turns an image config's user ("uid", "uid:gid", "name",
// "name:group"; empty is root) into ids, reading names from the image's
// /etc/passwd and /etc/group. uid and gid, when not nil, override it (a
// pod's runAsUser and runAsGroup); a uid without a gid takes its primary
// group from the image's /etc/passwd, else 0.
func ResolveUser(rootfs, spec string, uid, gid *int64) (User, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	var u User
	primary := uint32(0)
	switch {
	case uid != nil:
		if *uid < 0 || *uid > 1<<32-1 {
			return User{}, fmt.Errorf("runAsUser %d out of range", *uid)
		}
		u.UID = uint32(*uid)
		if e, ok := lookupID(filepath.Join(rootfs, "etc", "passwd"), u.UID); ok {
			primary = e
		}
	case userPart == "":
	default:
		if n, err := strconv.ParseUint(userPart, 10, 32); err == nil {
			u.UID = uint32(n)
			if e, ok := lookupID(filepath.Join(rootfs, "etc", "passwd"), u.UID); ok {
				primary = e
			}
		} else {
			id, g, ok := lookupName(filepath.Join(rootfs, "etc", "passwd"), userPart)
			if !ok {
				return User{}, fmt.Errorf("image user %q: not in the image's /etc/passwd", userPart)
			}
			u.UID, primary = id, g
		}
	}
	u.GID = primary
	switch {
	case gid != nil:
		if *gid < 0 || *gid > 1<<32-1 {
			return User{}, fmt.Errorf("runAsGroup %d out of range", *gid)
		}
		u.GID = uint32(*gid)
	case hasGroup && uid == nil:
		if n, err := strconv.ParseUint(groupPart, 10, 32); err == nil {
			u.GID = uint32(n)
		} else {
			id, _, ok := lookupName(filepath.Join(rootfs, "etc", "group"), groupPart)
			if !ok {
				return User{}, fmt.Errorf("image group %q: not in the image's /etc/group", groupPart)
			}
			u.GID = id
		}
	}
	return u, nil
}

// lookupName finds name in a passwd or group file: its id and (passwd) group.
func lookupName(file, name string) (id, group uint32, ok bool) {
	found := false
	scan(file, func(f []string) bool {
		if f[0] != name {
			return true
		}
		n, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return true
		}
		id, found = uint32(n), true
		if len(f) > 3 {
			if g, err := strconv.ParseUint(f[3], 10, 32); err == nil {
				group = uint32(g)
			}
		}
		return false
	})
	return id, group, found
}

// lookupID finds the primary group of uid in a passwd file.
func lookupID(file string, uid uint32) (group uint32, ok bool) {
	scan(file, func(f []string) bool {
		if f[2] != strconv.FormatUint(uint64(uid), 10) || len(f) < 4 {
			return true
		}
		if g, err := strconv.ParseUint(f[3], 10, 32); err == nil {
			group, ok = uint32(g), true
		}
		return false
	})
	return group, ok
}

func scan(file string, fn func(fields []string) bool) {
	// The file is the image's: it is read with the agent's rights but
	// through a plain path, so a link in the image pointing out of it is
	// not followed.
	if fi, err := os.Lstat(file); err != nil || !fi.Mode().IsRegular() {
		return
	}
	f, err := os.Open(file)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 3 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if !fn(fields) {
			return
		}
	}
}

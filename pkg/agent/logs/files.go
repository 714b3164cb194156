package logs

import (
	"cmp"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Files says where one container's logs are: the files in Dir whose names
// begin with Prefix, followed by one of the names in the package comment.
// Many containers share a directory, each with a prefix of its own that is
// not the beginning of another's (the agent uses "<pod UID>_<container>.").
// Sharing one directory spares every container start creating a directory
// for it, which on ext4 costs about as much as the rest of opening its logs.
type Files struct {
	Dir    string
	Prefix string
}

// path is the path of the container's file with the (unprefixed) name.
func (f Files) path(name string) string { return filepath.Join(f.Dir, f.Prefix+name) }

// String names the files, for errors.
func (f Files) String() string { return f.path("*") }

// Current is the path of the file an attempt is writing.
func (f Files) Current(attempt int) string { return f.path(currentName(attempt)) }

// Attempts returns the attempt numbers that have log files, ascending.
func (f Files) Attempts() ([]int, error) {
	files, err := listFiles(f)
	if err != nil {
		return nil, err
	}
	return attempts(files), nil
}

// Remove deletes every file whose name begins with the prefix, whatever
// follows it: Files{Dir: d, Prefix: uid + "_"} are all the logs of a pod.
func (f Files) Remove() error {
	entries, err := os.ReadDir(f.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), f.Prefix) && !e.IsDir() {
			if err := os.Remove(filepath.Join(f.Dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

type fileKind int

const (
	kindCurrent fileKind = iota // <attempt>.log
	kindRotated                 // <attempt>.log.<seq>
	kindDone                    // <attempt>.done
)

// logFile is one file of a container's logs, recognised by its name.
type logFile struct {
	name    string // without the prefix
	attempt int
	kind    fileKind
	seq     int // for kindRotated
}

func currentName(attempt int) string { return strconv.Itoa(attempt) + ".log" }

func rotatedName(attempt, seq int) string {
	return strconv.Itoa(attempt) + ".log." + strconv.Itoa(seq)
}

func doneName(attempt int) string { return strconv.Itoa(attempt) + ".done" }

// parseName recognises the names written by this package.
func parseName(name string) (logFile, bool) {
	first, rest, ok := strings.Cut(name, ".")
	if !ok {
		return logFile{}, false
	}
	attempt, err := strconv.Atoi(first)
	if err != nil || attempt < 0 || strconv.Itoa(attempt) != first {
		return logFile{}, false
	}
	f := logFile{name: name, attempt: attempt}
	switch {
	case rest == "log":
		f.kind = kindCurrent
	case rest == "done":
		f.kind = kindDone
	case strings.HasPrefix(rest, "log."):
		seq, err := strconv.Atoi(rest[len("log."):])
		if err != nil || seq < 1 {
			return logFile{}, false
		}
		f.kind, f.seq = kindRotated, seq
	default:
		return logFile{}, false
	}
	return f, true
}

// listFiles returns the container's log files; a missing directory has none.
func listFiles(lf Files) ([]logFile, error) {
	entries, err := os.ReadDir(lf.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var files []logFile
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), lf.Prefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if f, ok := parseName(rest); ok {
			files = append(files, f)
		}
	}
	return files, nil
}

// attemptFiles returns the files of one kind of attempt, rotated ones oldest
// first.
func attemptFiles(files []logFile, attempt int, kind fileKind) []logFile {
	var out []logFile
	for _, f := range files {
		if f.attempt == attempt && f.kind == kind {
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b logFile) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

// attempts returns the attempt numbers that have log files, ascending.
func attempts(files []logFile) []int {
	var out []int
	for _, f := range files {
		if f.kind != kindDone && !slices.Contains(out, f.attempt) {
			out = append(out, f.attempt)
		}
	}
	slices.Sort(out)
	return out
}

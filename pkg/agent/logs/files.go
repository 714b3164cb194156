package logs

import (
	"cmp"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
)

type fileKind int

const (
	kindCurrent fileKind = iota // <attempt>.log
	kindRotated                 // <attempt>.log.<seq>
	kindDone                    // <attempt>.done
)

// logFile is one file of a log directory, recognised by its name.
type logFile struct {
	name    string
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

// listFiles returns the log files in dir; a missing dir has none.
func listFiles(dir string) ([]logFile, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var files []logFile
	for _, e := range entries {
		if f, ok := parseName(e.Name()); ok && e.Type().IsRegular() {
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

package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgefabric/edgefabric/pkg/agent/logs"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// LogFiles are a container's logs: files named "<pod UID>_<container>." and
// then the attempt in Config.LogDir (see package logs). All containers share
// that one directory, so that starting one creates a file and no directory.
func (s *Supervisor) LogFiles(uid, container string) logs.Files {
	return logs.Files{Dir: s.cfg.LogDir, Prefix: uid + "_" + container + "."}
}

// podLogs are the logs of every container of a pod.
func (s *Supervisor) podLogs(uid string) logs.Files {
	return logs.Files{Dir: s.cfg.LogDir, Prefix: uid + "_"}
}

// removeLogs deletes a deleted workload's logs once its containers have
// ended, as the kubelet removes a deleted pod's.
func (w *workload) removeLogs() {
	if err := w.s.podLogs(w.spec.GetUid()).Remove(); err != nil {
		w.s.log.Warn("remove logs", "pod", w.key(), "err", err)
	}
}

// tidyLogs moves logs kept as agents before this one kept them, in a
// directory per pod and one in it per container, to where LogFiles says;
// then it deletes the logs of pods the device no longer runs (deleted while
// the agent was down).
func (s *Supervisor) tidyLogs(ws []*hubv1.Workload) {
	entries, err := os.ReadDir(s.cfg.LogDir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("read log directory", "dir", s.cfg.LogDir, "err", err)
		}
		return
	}
	keep := map[string]bool{}
	for _, w := range ws {
		keep[w.GetUid()] = true
	}
	s.mu.Lock()
	for uid := range s.fenced {
		keep[uid] = true
	}
	s.mu.Unlock()
	for _, e := range entries {
		if e.IsDir() {
			if err := s.moveOldLogs(e.Name()); err != nil {
				s.log.Warn("move logs to the directory all pods share", "pod", e.Name(), "err", err)
			}
		}
	}
	entries, _ = os.ReadDir(s.cfg.LogDir)
	gone := map[string]bool{}
	for _, e := range entries {
		uid, _, ok := strings.Cut(e.Name(), "_")
		if ok && !e.IsDir() && !keep[uid] {
			gone[uid] = true
		}
	}
	for uid := range gone {
		if err := s.podLogs(uid).Remove(); err != nil {
			s.log.Warn("remove logs of a pod the device no longer runs", "pod", uid, "err", err)
		}
	}
}

// moveOldLogs moves the files of the old per-pod log directory uid.
func (s *Supervisor) moveOldLogs(uid string) error {
	podDir := filepath.Join(s.cfg.LogDir, uid)
	containers, err := os.ReadDir(podDir)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range containers {
		if !c.IsDir() {
			continue
		}
		dir := filepath.Join(podDir, c.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lf := s.LogFiles(uid, c.Name())
		for _, f := range files {
			if err := os.Rename(filepath.Join(dir, f.Name()), filepath.Join(lf.Dir, lf.Prefix+f.Name())); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, os.Remove(dir))
	}
	errs = append(errs, os.Remove(podDir))
	return errors.Join(errs...)
}

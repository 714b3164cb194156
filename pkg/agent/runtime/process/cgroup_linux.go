package process

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const cgroupRoot = "/sys/fs/cgroup"

// cpuPeriodMicros is the CFS period quotas are given against.
const cpuPeriodMicros = 100000

// detectCgroups returns the driver for the cgroups this device offers and
// lets the agent write, or nil.
func detectCgroups(log *slog.Logger) cgroupDriver {
	if b, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		d := &cgroupV2{base: filepath.Join(cgroupRoot, "edgefabric")}
		if err := d.init(strings.Fields(string(b))); err != nil {
			log.Info("cgroup v2 not usable", "err", err)
			return nil
		}
		return d
	}
	mem := filepath.Join(cgroupRoot, "memory")
	if _, err := os.Stat(filepath.Join(mem, "memory.limit_in_bytes")); err == nil {
		d := &cgroupV1{memBase: filepath.Join(mem, "edgefabric")}
		if err := os.MkdirAll(d.memBase, 0o755); err != nil {
			log.Info("cgroup v1 not usable", "err", err)
			return nil
		}
		for _, c := range []string{"cpu", "cpu,cpuacct"} {
			if _, err := os.Stat(filepath.Join(cgroupRoot, c, "cpu.cfs_quota_us")); err == nil {
				if os.MkdirAll(filepath.Join(cgroupRoot, c, "edgefabric"), 0o755) == nil {
					d.cpuBase = filepath.Join(cgroupRoot, c, "edgefabric")
				}
				break
			}
		}
		return d
	}
	return nil
}

func writeFile(path, value string) error {
	return os.WriteFile(path, []byte(value), 0o644)
}

// rmdirRetry removes a cgroup directory; the kernel may need a moment after
// the last process exits.
func rmdirRetry(dir string) {
	for k := 0; k < 20; k++ {
		if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type cgroupV2 struct{ base string }

func (d *cgroupV2) name() string { return "v2" }

func (d *cgroupV2) init(controllers []string) error {
	var want []string
	for _, c := range controllers {
		if c == "memory" || c == "cpu" {
			want = append(want, "+"+c)
		}
	}
	if len(want) == 0 {
		return errors.New("no memory or cpu controller")
	}
	if err := writeFile(filepath.Join(cgroupRoot, "cgroup.subtree_control"), strings.Join(want, " ")); err != nil {
		return fmt.Errorf("enable controllers: %w", err)
	}
	if err := os.MkdirAll(d.base, 0o755); err != nil {
		return err
	}
	return writeFile(filepath.Join(d.base, "cgroup.subtree_control"), strings.Join(want, " "))
}

func (d *cgroupV2) create(id string, mem, cpu int64) (cgroup, error) {
	dir := filepath.Join(d.base, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if mem > 0 {
		if err := writeFile(filepath.Join(dir, "memory.max"), strconv.FormatInt(mem, 10)); err != nil {
			os.Remove(dir)
			return nil, fmt.Errorf("memory.max: %w", err)
		}
		_ = writeFile(filepath.Join(dir, "memory.swap.max"), "0")
	}
	if cpu > 0 {
		if err := writeFile(filepath.Join(dir, "cpu.max"), fmt.Sprintf("%d %d", cpu*cpuPeriodMicros/1000, cpuPeriodMicros)); err != nil {
			os.Remove(dir)
			return nil, fmt.Errorf("cpu.max: %w", err)
		}
	}
	f, err := os.Open(dir)
	if err != nil {
		os.Remove(dir)
		return nil, err
	}
	return &cgV2{dir: dir, f: f}, nil
}

type cgV2 struct {
	dir string
	f   *os.File
}

func (c *cgV2) fd() (int, bool) { return int(c.f.Fd()), true }

func (c *cgV2) addPID(pid int) error {
	return writeFile(filepath.Join(c.dir, "cgroup.procs"), strconv.Itoa(pid))
}

func (c *cgV2) oomKilled() bool {
	return keyValue(filepath.Join(c.dir, "memory.events"), "oom_kill") > 0
}

func (c *cgV2) memory() (int64, bool) {
	b, err := os.ReadFile(filepath.Join(c.dir, "memory.current"))
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil
}

func (c *cgV2) remove() {
	c.f.Close()
	_ = writeFile(filepath.Join(c.dir, "cgroup.kill"), "1")
	rmdirRetry(c.dir)
}

type cgroupV1 struct{ memBase, cpuBase string }

func (d *cgroupV1) name() string { return "v1" }

func (d *cgroupV1) create(id string, mem, cpu int64) (cgroup, error) {
	c := &cgV1{}
	if mem > 0 {
		dir := filepath.Join(d.memBase, id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		c.dirs = append(c.dirs, dir)
		c.mem = dir
		if err := writeFile(filepath.Join(dir, "memory.limit_in_bytes"), strconv.FormatInt(mem, 10)); err != nil {
			c.remove()
			return nil, fmt.Errorf("memory.limit_in_bytes: %w", err)
		}
		_ = writeFile(filepath.Join(dir, "memory.memsw.limit_in_bytes"), strconv.FormatInt(mem, 10))
		_ = writeFile(filepath.Join(dir, "memory.swappiness"), "0")
	}
	if cpu > 0 && d.cpuBase != "" {
		dir := filepath.Join(d.cpuBase, id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			c.remove()
			return nil, err
		}
		c.dirs = append(c.dirs, dir)
		_ = writeFile(filepath.Join(dir, "cpu.cfs_period_us"), strconv.Itoa(cpuPeriodMicros))
		if err := writeFile(filepath.Join(dir, "cpu.cfs_quota_us"), strconv.FormatInt(cpu*cpuPeriodMicros/1000, 10)); err != nil {
			c.remove()
			return nil, fmt.Errorf("cpu.cfs_quota_us: %w", err)
		}
	}
	return c, nil
}

type cgV1 struct {
	dirs []string
	mem  string
}

func (c *cgV1) fd() (int, bool) { return 0, false }

func (c *cgV1) addPID(pid int) error {
	var errs []error
	for _, d := range c.dirs {
		errs = append(errs, writeFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)))
	}
	return errors.Join(errs...)
}

func (c *cgV1) oomKilled() bool {
	if c.mem == "" {
		return false
	}
	if keyValue(filepath.Join(c.mem, "memory.oom_control"), "oom_kill") > 0 {
		return true
	}
	return false
}

func (c *cgV1) memory() (int64, bool) {
	if c.mem == "" {
		return 0, false
	}
	b, err := os.ReadFile(filepath.Join(c.mem, "memory.usage_in_bytes"))
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil
}

func (c *cgV1) remove() {
	for _, d := range c.dirs {
		if b, err := os.ReadFile(filepath.Join(d, "cgroup.procs")); err == nil {
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					killGroup(pid)
				}
			}
		}
		rmdirRetry(d)
	}
}

// keyValue reads "key value" lines (memory.events, memory.oom_control) and
// returns key's value, 0 if absent.
func keyValue(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

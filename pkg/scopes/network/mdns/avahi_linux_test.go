package mdns

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/scopes"
)

// TestAvahiInterop checks that Debian's avahi tools and edgefabric agents see
// each other: `avahi-browse -rpt _edgefabric._tcp` lists an agent, and an
// agent finds a service avahi-publish announces. It runs a private D-Bus
// system bus and an avahi-daemon inside one side of a veth pair, so it needs
// root, ip, dbus-daemon and avahi (apt-get install avahi-utils avahi-daemon),
// and no avahi-daemon already running on the machine.
func TestAvahiInterop(t *testing.T) {
	t.Parallel()
	for _, bin := range []string{"avahi-browse", "avahi-publish", "avahi-daemon", "dbus-daemon", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (apt-get install avahi-utils avahi-daemon): %v", bin, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("running avahi-daemon in a network namespace needs root")
	}
	if _, err := os.Stat("/run/avahi-daemon/pid"); err == nil {
		t.Skip("an avahi-daemon runs on this machine; a second one would refuse to start")
	}
	sa, sb := vethLab(t)
	dir := t.TempDir()
	bus := filepath.Join(dir, "bus")
	env := append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS=unix:path="+bus)

	busConf := filepath.Join(dir, "bus.conf")
	writeFile(t, busConf, `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=`+bus+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`)
	// dbus-daemon prints its address once it listens.
	daemon(t, "dbus-daemon", exec.Command("dbus-daemon", "--config-file="+busConf, "--nofork", "--nopidfile", "--print-address"), true, "unix:")

	avahiConf := filepath.Join(dir, "avahi.conf")
	writeFile(t, avahiConf, fmt.Sprintf(`[server]
use-ipv4=yes
use-ipv6=no
allow-interfaces=%s
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
publish-workstation=no
publish-hinfo=no
`, sb.ifaces[0].Name))
	avahi := exec.Command("ip", "netns", "exec", sb.ns, "avahi-daemon", "--no-drop-root", "--no-chroot", "--no-rlimits", "--no-proc-title", "--debug", "-f", avahiConf)
	avahi.Env = env
	daemon(t, "avahi-daemon", avahi, false, "Server startup complete")

	a := start(t, sa, Config{DeviceID: "dev-a", Account: "acme", Port: 7001, Version: "1.2.3", NetworkHint: "lan-a"})
	// b shares its namespace, and port 5353, with avahi-daemon, as on a
	// Raspberry Pi OS or desktop machine.
	b := start(t, sb, Config{DeviceID: "dev-b", Account: "acme", Port: 7002})
	a.waitReady()
	b.waitReady()
	a.waitEvent("seen dev-b next to avahi-daemon", seen("dev-b"))
	b.waitEvent("seen dev-a from next to avahi-daemon", seen("dev-a"))

	// avahi-publish announces an agent of the same account on the other side.
	pub := exec.Command("ip", "netns", "exec", sb.ns, "avahi-publish", "-s", "dev-z", Service, "7009",
		"id=dev-z", "acct="+scopes.Fingerprint("acme"), "v=avahi", "net=lan-z")
	pub.Env = env
	daemon(t, "avahi-publish", pub, false, "Established")
	// avahi may answer with SRV and TXT before the address record: wait for
	// the sighting that carries the address.
	ev := a.waitEvent("seen dev-z with its address", func(ev Event) bool { return seen("dev-z")(ev) && len(ev.Peer.Addrs) > 0 })
	if got, want := fmt.Sprintf("%v %d %s %s", ev.Peer.Addrs, ev.Peer.Port, ev.Peer.Version, ev.Peer.NetworkHint), "["+sb.addr+"] 7009 avahi lan-z"; got != want {
		t.Errorf("dev-z as the agent sees it: got %s, want %s", got, want)
	}

	// avahi-browse -t ends after "all for now", which may come before the
	// agent's answer reached avahi-daemon's cache: try again a few times.
	var out []byte
	want := map[string]string{ // instance → address;port;TXT it must hold
		"dev-a": sa.addr + ";7001;" + `"id=dev-a" "acct=` + scopes.Fingerprint("acme") + `" "v=1.2.3" "net=lan-a"`,
		"dev-b": sb.addr + ";7002;" + `"id=dev-b" "acct=` + scopes.Fingerprint("acme") + `"`,
	}
	for range 5 {
		browse := exec.Command("ip", "netns", "exec", sb.ns, "avahi-browse", "-rpt", Service)
		browse.Env = env
		var err error
		out, err = browse.CombinedOutput()
		if err != nil {
			t.Fatalf("avahi-browse: %v\n%s", err, out)
		}
		found := map[string]bool{}
		for line := range strings.Lines(string(out)) {
			// =;iface;IPv4;instance;type;domain;host;address;port;"txt" "txt"...
			f := strings.SplitN(strings.TrimSpace(line), ";", 10)
			if len(f) < 10 || f[0] != "=" || f[4] != Service || want[f[3]] == "" {
				continue
			}
			found[f[3]] = true
			w := strings.SplitN(want[f[3]], ";", 3)
			if f[5] != "local" || f[6] != "ef-"+f[3]+".local" || f[7] != w[0] || f[8] != w[1] {
				t.Errorf("avahi-browse resolved %s as %q", f[3], line)
			}
			for kv := range strings.FieldsSeq(w[2]) {
				if !strings.Contains(f[9], kv) {
					t.Errorf("%s's TXT %s lacks %s", f[3], f[9], kv)
				}
			}
		}
		if len(found) == len(want) {
			t.Logf("avahi-browse -rpt %s:\n%s", Service, out)
			return
		}
	}
	t.Fatalf("avahi-browse did not list dev-a and dev-b:\n%s", out)
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// daemon starts cmd, waits until a line of its output (stdout, else stderr)
// contains ready, and stops it with SIGTERM when the test ends. The rest of
// its output goes to the test log.
func daemon(t *testing.T, name string, cmd *exec.Cmd, stdout bool, ready string) {
	t.Helper()
	var (
		r   io.ReadCloser
		err error
	)
	if stdout {
		r, err = cmd.StdoutPipe()
	} else {
		r, err = cmd.StderrPipe()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	lines := make(chan string)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		defer close(lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	logged := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-logged
		<-drained
		if err := cmd.Wait(); err != nil && !isSignal(err) {
			t.Logf("%s: %v", name, err)
		}
	})
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				close(logged)
				t.Fatalf("%s ended before it was ready", name)
			}
			t.Logf("%s: %s", name, l)
			if strings.Contains(l, ready) {
				go func() { // keep draining so the daemon never blocks on its output
					defer close(logged)
					for range lines {
					}
				}()
				return
			}
		case <-timeout:
			go func() {
				defer close(logged)
				for range lines {
				}
			}()
			t.Fatalf("%s not ready after 10s", name)
		}
	}
}

func isSignal(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && !ee.Exited()
}

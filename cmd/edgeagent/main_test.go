package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefabric/edgefabric/pkg/agent"
	"github.com/edgefabric/edgefabric/pkg/identity"
)

func TestParseConfigFileAndFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(file, []byte(`
hub: hub.example.com:7443
hubCA: /etc/edgeagent/ca.crt
token: from-file
dataDir: /data
labels: {room: kitchen}
restartBackoff: 2s
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, _, err := parse([]string{"--config", file, "--token", "from-flag", "--labels", "zone=a,floor=1", "--pods", "7"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hub != "hub.example.com:7443" || cfg.HubCA != "/etc/edgeagent/ca.crt" || cfg.DataDir != "/data" {
		t.Errorf("values from the file: got %+v", cfg)
	}
	if cfg.Token != "from-flag" {
		t.Errorf("token: got %q, want the flag to win over the file", cfg.Token)
	}
	if cfg.Labels["zone"] != "a" || cfg.Labels["floor"] != "1" || cfg.Labels["room"] != "" {
		t.Errorf("labels: got %v, want the flag's set only", cfg.Labels)
	}
	if cfg.RestartBackoff != 2*time.Second {
		t.Errorf("restart back-off: got %s", cfg.RestartBackoff)
	}
	if cfg.Pods != 7 || cfg.NativeWorkloads != "" || cfg.NoRootImages {
		t.Errorf("pods %d, native workloads %q, no root images %v: want the flag's 7, and the file's zero values for flags not given", cfg.Pods, cfg.NativeWorkloads, cfg.NoRootImages)
	}
}

// TestFlagsUnchanged: the flags' names, types, defaults and help texts are
// those of testdata/flags.txt (edgeagent -h before the flags were bound to
// the configuration's fields); a change to them is a change to the
// command's interface, made on purpose by updating the file.
func TestFlagsUnchanged(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("testdata", "flags.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg agent.Config
	fs := newFlagSet(&cfg, &agentFlags{})
	var got strings.Builder
	fs.SetOutput(&got)
	fs.PrintDefaults()
	if diff := cmp.Diff(string(want), got.String()); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}
}

func TestParseRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad label", []string{"--labels", "novalue"}, `"novalue" is not k=v`},
		{"stray argument", []string{"extra"}, "unexpected arguments"},
		{"bad level", []string{"--log-level", "loud"}, "--log-level"},
		{"missing file", []string{"--config", "/does/not/exist"}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := parse(tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestParseNativeWorkloadFlags: the device owner's choices about native
// containers, from flags and from the file, flags winning.
func TestParseNativeWorkloadFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(file, []byte("nativeWorkloads: off\nnoRootImages: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		args       []string
		wantNative string
		wantNoRoot bool
	}{
		{"defaults", nil, "isolated", false},
		{"flags", []string{"--native-workloads", "unisolated", "--allow-root-images=false"}, "unisolated", true},
		{"file", []string{"--config", file}, "off", true},
		{"flags over the file", []string{"--config", file, "--native-workloads", "isolated", "--allow-root-images"}, "isolated", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, _, err := parse(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.NativeWorkloads != tc.wantNative || cfg.NoRootImages != tc.wantNoRoot {
				t.Errorf("got native workloads %q, no root images %v; want %q, %v", cfg.NativeWorkloads, cfg.NoRootImages, tc.wantNative, tc.wantNoRoot)
			}
		})
	}
}

// TestParseUserNSFlags: the user namespace choices, from flags and from the
// file, flags winning.
func TestParseUserNSFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(file, []byte("nativeUserNS: off\nuserNSBase: 200000\nuserNSRanges: 4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	type userns struct {
		Mode   string
		Base   uint32
		Ranges int
	}
	for _, tc := range []struct {
		name    string
		args    []string
		want    userns
		wantErr string
	}{
		{name: "defaults", want: userns{Mode: "auto"}},
		{name: "flags", args: []string{"--native-userns", "required", "--userns-base", "131072", "--userns-ranges", "8"}, want: userns{"required", 131072, 8}},
		{name: "file", args: []string{"--config", file}, want: userns{"off", 200000, 4}},
		{name: "flags over the file", args: []string{"--config", file, "--native-userns", "auto"}, want: userns{"auto", 200000, 4}},
		{name: "base past the last uid", args: []string{"--userns-base", "4294967296"}, wantErr: "past the last uid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, _, err := parse(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := userns{cfg.NativeUserNS, cfg.UserNSBase, cfg.UserNSRanges}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("user namespace configuration (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseToken(t *testing.T) {
	dir := t.TempDir()
	withToken := filepath.Join(dir, "token.yaml")
	withFile := filepath.Join(dir, "file.yaml")
	for p, data := range map[string]string{withToken: "token: in-config\n", withFile: "tokenFile: /etc/edgeagent/bootstrap-token\n"} {
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	type got struct{ Token, TokenFile, Warning string }
	for _, tc := range []struct {
		name string
		args []string
		env  string
		want got
	}{
		{"flag warns", []string{"--token", "on-cmdline"}, "from-env", got{Token: "on-cmdline", Warning: "--token shows the bootstrap token"}},
		{"file", []string{"--token-file", "/run/token"}, "from-env", got{TokenFile: "/run/token"}},
		{"environment", nil, "from-env", got{Token: "from-env"}},
		{"none", nil, "", got{}},
		{"config file token warns", []string{"--config", withToken}, "from-env", got{Token: "in-config", Warning: "holds the bootstrap token"}},
		{"config file token file", []string{"--config", withFile}, "from-env", got{TokenFile: "/etc/edgeagent/bootstrap-token"}},
		{"empty flag to drop the token", []string{"--token", ""}, "", got{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var warn strings.Builder
			cfg, _, _, err := parseWith(tc.args, func(k string) string {
				if k == TokenEnv {
					return tc.env
				}
				return ""
			}, &warn)
			if err != nil {
				t.Fatal(err)
			}
			g := got{Token: cfg.Token, TokenFile: cfg.TokenFile}
			if tc.want.Warning != "" && strings.Contains(warn.String(), tc.want.Warning) {
				g.Warning = tc.want.Warning
			} else {
				g.Warning = warn.String()
			}
			if diff := cmp.Diff(tc.want, g); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseImageFlags(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		bytes    int64
		progress time.Duration
		timeout  time.Duration
		age      time.Duration
	}{
		{args: nil},
		{args: []string{"--image-cache-size", "512Mi"}, bytes: 512 << 20},
		{args: []string{"--image-cache-size", "3G"}, bytes: 3e9},
		{args: []string{"--image-cache-size", "1048576"}, bytes: 1 << 20},
		{
			args:     []string{"--image-pull-progress-timeout", "30s", "--image-pull-timeout", "10m", "--image-max-unused-age", "72h"},
			progress: 30 * time.Second, timeout: 10 * time.Minute, age: 72 * time.Hour,
		},
	} {
		cfg, _, _, err := parse(tc.args)
		if err != nil {
			t.Fatalf("parse(%q): %v", tc.args, err)
		}
		if cfg.ImageCacheBytes != tc.bytes || cfg.ImagePullProgressTimeout != tc.progress || cfg.ImagePullTimeout != tc.timeout || cfg.ImageMaxUnusedAge != tc.age {
			t.Errorf("parse(%q): got cache %d, progress %s, timeout %s, age %s", tc.args,
				cfg.ImageCacheBytes, cfg.ImagePullProgressTimeout, cfg.ImagePullTimeout, cfg.ImageMaxUnusedAge)
		}
	}
	for _, bad := range []string{"lots", "-1Gi", "1.5Gi", "0x10"} {
		if _, _, _, err := parse([]string{"--image-cache-size", bad}); err == nil || !strings.Contains(err.Error(), "--image-cache-size") {
			t.Errorf("--image-cache-size %s: got %v, want an error naming the flag", bad, err)
		}
	}
}

// TestJoinKeepsTheTokenOutOfTheConfig: join writes the token to a file of
// its own (mode 0600) that the agent removes after joining, and the config
// names only that file; the token never goes on a command line it writes.
func TestJoinKeepsTheTokenOutOfTheConfig(t *testing.T) {
	dir := t.TempDir()
	ca, err := identity.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _, err := ca.PEM()
	if err != nil {
		t.Fatal(err)
	}
	caPath, tokPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "given-token")
	if err := os.WriteFile(caPath, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokPath, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "etc", "config.yaml")
	var out, errOut strings.Builder
	noEnv := func(string) string { return "" }
	if err := join([]string{"--hub", "hub:7443", "--hub-ca", caPath, "--token-file", tokPath, "--config", cfgPath,
		"--data-dir", filepath.Join(dir, "data"), "--systemd", "off"}, &out, &errOut, noEnv); err != nil {
		t.Fatal(err)
	}
	if errOut.Len() > 0 {
		t.Errorf("warnings with --token-file: %s", errOut.String())
	}
	config, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	written := filepath.Join(dir, "etc", "bootstrap-token")
	if strings.Contains(string(config), "s3cret") || !strings.Contains(string(config), "tokenFile: "+written) {
		t.Errorf("config holds the token or not its file:\n%s", config)
	}
	tok, err := os.ReadFile(written)
	fi, serr := os.Stat(written)
	if err != nil || serr != nil || strings.TrimSpace(string(tok)) != "s3cret-token" || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file: %q, %v, %v; want the token, mode 0600", tok, err, fi)
	}
	// The file join wrote is what the agent runs with.
	cfg, _, _, err := parseWith([]string{"--config", cfgPath}, noEnv, &errOut)
	if err != nil || cfg.TokenFile != written || cfg.Token != "" {
		t.Errorf("agent config from join: token file %q, token %q, %v", cfg.TokenFile, cfg.Token, err)
	}

	// --token still works, with a warning; none at all is refused.
	errOut.Reset()
	if err := join([]string{"--hub", "hub:7443", "--hub-ca", caPath, "--token", "s3cret-token", "--config", cfgPath, "--systemd", "off", "--dry-run"},
		&out, &errOut, noEnv); err != nil || !strings.Contains(errOut.String(), "--token shows the bootstrap token") {
		t.Errorf("join --token: %v, stderr %q; want a warning", err, errOut.String())
	}
	err = join([]string{"--hub", "hub:7443", "--hub-ca", caPath, "--config", cfgPath, "--systemd", "off", "--dry-run"}, &out, &errOut, noEnv)
	if err == nil || !strings.Contains(err.Error(), "bootstrap token is required (--token-file FILE, or EDGEFABRIC_TOKEN)") {
		t.Errorf("join without a token: got %v", err)
	}
}

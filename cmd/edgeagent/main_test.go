package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	cfg, _, _, err := parse([]string{"--config", file, "--token", "from-flag", "--labels", "zone=a,floor=1"})
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

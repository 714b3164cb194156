package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/edgefabric/edgefabric/pkg/agent"
)

// unitName is the systemd unit join installs.
const unitName = "edgeagent.service"

// joinPlan is what join writes and runs, so --dry-run can print exactly that.
type joinPlan struct {
	dataDir    string
	configPath string
	config     []byte
	caPath     string
	ca         []byte
	tokenPath  string
	token      []byte
	unitPath   string // empty: no systemd
	unit       []byte
	commands   [][]string
}

// join writes the agent's config file (what `edgeagent run --config` reads)
// and the bootstrap token beside it (the agent removes it once the device
// joined; the config names only its path) and, on Linux with systemd,
// installs and starts a unit that runs it.
func join(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("edgeagent join", flag.ContinueOnError)
	var cfg agent.Config
	var configPath, systemd, unitDir string
	var dryRun bool
	fs.StringVar(&cfg.Hub, "hub", "", "the provider's hub, host:port (required)")
	fs.StringVar(&cfg.Token, "token", "", "account bootstrap token; visible in ps: prefer --token-file or "+TokenEnv)
	fs.StringVar(&cfg.TokenFile, "token-file", "", "file holding the account bootstrap token (this, --token or "+TokenEnv+" is required)")
	fs.StringVar(&cfg.HubCA, "hub-ca", "", "PEM file of the CA that signed the hub's certificate (required; copied beside the config)")
	fs.StringVar(&configPath, "config", "/etc/edgeagent/config.yaml", "config file to write")
	fs.StringVar(&cfg.DataDir, "data-dir", "/var/lib/edgeagent", "directory for the agent's store, images and logs")
	fs.StringVar(&cfg.DeviceID, "device-id", "", "device ID (default: the host name with a random suffix, chosen at first start)")
	fs.StringVar(&systemd, "systemd", "auto", "install and start a systemd unit: auto (when systemd runs), on or off")
	fs.StringVar(&unitDir, "unit-dir", "/etc/systemd/system", "where the systemd unit is written")
	fs.BoolVar(&dryRun, "dry-run", false, "print the files and commands instead of writing and running them")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	switch {
	case cfg.Token != "" && cfg.TokenFile != "":
		errs = append(errs, errors.New("--token and --token-file: give one of them"))
	case cfg.Token != "":
		fmt.Fprint(stderr, tokenFlagWarning)
	case cfg.TokenFile != "":
		b, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("--token-file: %w", err))
		} else if cfg.Token = strings.TrimSpace(string(b)); cfg.Token == "" {
			errs = append(errs, fmt.Errorf("--token-file %s is empty", cfg.TokenFile))
		}
	default:
		cfg.Token = getenv(TokenEnv)
	}
	if cfg.Token == "" && cfg.TokenFile == "" {
		errs = append(errs, errors.New("the account's bootstrap token is required (--token-file FILE, or "+TokenEnv+")"))
	}
	if cfg.HubCA == "" {
		errs = append(errs, errors.New("the hub's CA certificate is required (--hub-ca FILE; the Secret edgefabric-ca in the provider's namespace holds it)"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	ca, err := os.ReadFile(cfg.HubCA)
	if err != nil {
		return fmt.Errorf("--hub-ca: %w", err)
	}
	if err := checkCA(ca); err != nil {
		return fmt.Errorf("--hub-ca %s: %w", cfg.HubCA, err)
	}
	if configPath, err = filepath.Abs(configPath); err != nil {
		return err
	}
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return err
	}
	p := joinPlan{
		dataDir: cfg.DataDir, configPath: configPath, caPath: filepath.Join(filepath.Dir(configPath), "hub-ca.crt"), ca: ca,
		tokenPath: filepath.Join(filepath.Dir(configPath), "bootstrap-token"), token: []byte(cfg.Token + "\n"),
	}
	cfg.HubCA = p.caPath
	if err := cfg.Validate(); err != nil {
		return err
	}
	if p.config, err = yaml.Marshal(fileConfig{Hub: cfg.Hub, HubCA: cfg.HubCA, TokenFile: p.tokenPath, DataDir: cfg.DataDir, DeviceID: cfg.DeviceID}); err != nil {
		return err
	}
	p.config = append([]byte("# Written by edgeagent join; read by edgeagent run --config.\n"), p.config...)

	useSystemd := false
	switch systemd {
	case "on":
		useSystemd = true
	case "off":
	case "auto":
		useSystemd = systemdRuns()
	default:
		return fmt.Errorf("--systemd %q: want auto, on or off", systemd)
	}
	if useSystemd {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		p.unitPath = filepath.Join(unitDir, unitName)
		p.unit = unit(self, configPath)
		p.commands = [][]string{{"systemctl", "daemon-reload"}, {"systemctl", "enable", "--now", unitName}, {"systemctl", "restart", unitName}}
	}
	if dryRun {
		return p.print(stdout)
	}
	return p.apply(stdout)
}

// fileConfig is the part of agent.Config that join writes: the token's
// file, never the token.
type fileConfig struct {
	Hub       string `yaml:"hub"`
	HubCA     string `yaml:"hubCA"`
	TokenFile string `yaml:"tokenFile"`
	DataDir   string `yaml:"dataDir"`
	DeviceID  string `yaml:"deviceID,omitempty"`
}

func checkCA(data []byte) error {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return errors.New("holds no PEM certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err
	}
	if !c.IsCA {
		return errors.New("is not a CA certificate")
	}
	return nil
}

// systemdRuns reports whether this is Linux booted with systemd.
func systemdRuns() bool {
	if runtime.GOOS != "linux" {
		return false
	}
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

func unit(exe, configPath string) []byte {
	return fmt.Appendf(nil, `[Unit]
Description=edgefabric agent
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=%s run --config %s
Restart=always
RestartSec=5
# The agent stops its workloads on SIGTERM.
KillMode=mixed
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
`, exe, configPath)
}

func (p joinPlan) print(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# would write %s (mode 0600):\n%s\n", p.configPath, p.config)
	fmt.Fprintf(&b, "# would write %s (mode 0644): the hub's CA certificate (%d bytes)\n", p.caPath, len(p.ca))
	fmt.Fprintf(&b, "# would write %s (mode 0600): the bootstrap token (%d bytes); the agent removes it once the device joined\n\n", p.tokenPath, len(p.token))
	if p.unitPath == "" {
		fmt.Fprintf(&b, "# no systemd: start the agent with\nedgeagent run --config %s\n", p.configPath)
	} else {
		fmt.Fprintf(&b, "# would write %s (mode 0644):\n%s\n# would run:\n", p.unitPath, p.unit)
		for _, c := range p.commands {
			fmt.Fprintln(&b, strings.Join(c, " "))
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

func (p joinPlan) apply(w io.Writer) error {
	if err := os.MkdirAll(filepath.Dir(p.configPath), 0o755); err != nil {
		return err
	}
	if err := writeFile(p.caPath, p.ca, 0o644); err != nil {
		return err
	}
	// The token is a secret, kept only until the device joined.
	if err := writeFile(p.tokenPath, p.token, 0o600); err != nil {
		return err
	}
	if err := writeFile(p.configPath, p.config, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s, %s and %s (the agent removes the token once the device joined)\n", p.configPath, p.caPath, p.tokenPath)
	if p.unitPath == "" {
		fmt.Fprintf(w, "no systemd here: start the agent with\n  edgeagent run --config %s\n", p.configPath)
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p.unitPath), 0o755); err != nil {
		return fmt.Errorf("systemd unit directory: %w", err)
	}
	if err := writeFile(p.unitPath, p.unit, 0o644); err != nil {
		return fmt.Errorf("write systemd unit: %w", err)
	}
	fmt.Fprintf(w, "wrote %s\n", p.unitPath)
	for _, c := range p.commands {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(c, " "), err)
		}
	}
	fmt.Fprintf(w, "started %s; see it with: edgeagent status --data-dir %s\n", unitName, p.dataDir)
	return nil
}

// writeFile writes data to path through a temporary file, so a reader never
// sees half a file.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

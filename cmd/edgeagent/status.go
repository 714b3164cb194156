package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/localapi"
)

// status asks the agent running on the data directory how it is and prints it.
func status(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("edgeagent status", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "/var/lib/edgeagent", "the running agent's data directory")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	st, err := localapi.Get(ctx, localapi.SocketPath(*dataDir))
	if errors.Is(err, localapi.ErrNotRunning) {
		return fmt.Errorf("no agent is running with data directory %s (start it with `edgeagent run`, or `systemctl start edgeagent`)", *dataDir)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return st.Write(stdout, time.Now())
}

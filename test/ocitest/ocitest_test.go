package ocitest

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestPush(t *testing.T) {
	reg := Serve(t)
	module := []byte("\x00asm\x01\x00\x00\x00")
	tests := []struct {
		packaging  Packaging
		wantConfig string
		wantLayers []string
	}{
		{Image, "application/vnd.oci.image.config.v1+json", []string{"application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+gzip"}},
		{Index, "application/vnd.oci.image.config.v1+json", []string{"application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+gzip"}},
		{WasmArtifact, WasmConfigV0, []string{WasmLayer}},
		{WasmToOCI, WasmToOCIConfigV1, []string{WasmToOCILayer}},
	}
	for _, tt := range tests {
		t.Run(string(tt.packaging), func(t *testing.T) {
			repo := reg + "/" + string(tt.packaging)
			digest := Push(t, repo+":v1", module, tt.packaging)
			ref, err := name.ParseReference(repo + "@" + digest)
			if err != nil {
				t.Fatal(err)
			}
			desc, err := remote.Get(ref, remote.WithContext(t.Context()))
			if err != nil {
				t.Fatalf("manifest %s: %v", digest, err)
			}
			m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
			if err != nil {
				t.Fatal(err)
			}
			var layers []string
			for _, l := range m.Layers {
				layers = append(layers, string(l.MediaType))
			}
			if diff := cmp.Diff(tt.wantConfig, string(m.Config.MediaType)); diff != "" {
				t.Errorf("config media type mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantLayers, layers); diff != "" {
				t.Errorf("layer media types mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRepoRoot(t *testing.T) {
	root := RepoRoot(t)
	if got := BuildGo(t, "examples/hello"); len(got) < 4 || string(got[:4]) != "\x00asm" {
		t.Errorf("BuildGo(examples/hello) from %s did not return a wasm module", root)
	}
}

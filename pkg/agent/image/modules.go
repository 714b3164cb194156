package image

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrNotInImage is returned by ImageModule for a path the image's filesystem
// does not hold.
var ErrNotInImage = errors.New("not found in the image filesystem")

// ImageModule returns the path of the WASM module at p in the filesystem of
// the image imageID (an "image" packaging that was pulled), storing the
// module on first use. p is absolute or relative to the image's working
// directory. It is how kubectl exec runs another module of a container's
// image. A stored module that no image record names is removed by the next
// GC and stored again when asked for.
func (s *Store) ImageModule(imageID, p string) (string, error) {
	s.gc.RLock()
	defer s.gc.RUnlock()
	rec, err := s.readRecord(imageID)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", imageID, err)
	}
	if rec.Packaging != PackagingImage {
		return "", fmt.Errorf("%s: %w (a %s artifact holds one module and no filesystem)", p, ErrNotInImage, rec.Packaging)
	}
	if err := s.verifyFile(s.blobPath(imageID), imageID); err != nil {
		return "", fmt.Errorf("image %s: manifest: %w", imageID, err)
	}
	raw, err := os.ReadFile(s.blobPath(imageID))
	if err != nil {
		return "", fmt.Errorf("image %s: manifest: %w", imageID, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return "", fmt.Errorf("image %s: manifest: %w", imageID, err)
	}
	var layers []string
	for _, l := range m.Layers {
		if _, err := hexOf(l.Digest.String()); err != nil {
			return "", fmt.Errorf("image %s: %w", imageID, err)
		}
		// A layer that lost its digest is not read: it is pulled again
		// with the image.
		if err := s.verifyFile(s.blobPath(l.Digest.String()), l.Digest.String()); err != nil {
			return "", fmt.Errorf("image %s: layer %s: %w", imageID, l.Digest, err)
		}
		layers = append(layers, s.blobPath(l.Digest.String()))
	}
	files, err := mergeLayers(layers, s.newLimit())
	if err != nil {
		return "", err
	}
	if !path.IsAbs(p) {
		p = path.Join("/", rec.WorkingDir, p)
	}
	q, e, err := resolve(files, path.Clean(p))
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, ErrNotInImage)
	}
	digest, err := s.copyEntry(layers[e.layer], e.ordinal)
	if err != nil {
		return "", fmt.Errorf("%s: %w", q, err)
	}
	return s.modulePath(digest), nil
}

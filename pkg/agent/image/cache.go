package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

const (
	blobsDir   = "blobs/sha256"
	modulesDir = "modules/sha256"
	imagesDir  = "images/sha256"
	refsDir    = "refs"
	tmpDir     = "tmp"
	rootfsDir  = "rootfs"
)

// record is what the cache knows about one image ID.
type record struct {
	ImageID    string   `json:"imageID"`
	Packaging  string   `json:"packaging"`
	Module     string   `json:"module"`           // digest of the module bytes; empty for native images
	RootFS     bool     `json:"rootfs,omitempty"` // a native image unpacked under rootfs/
	Platform   string   `json:"platform,omitempty"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	User       string   `json:"user,omitempty"`
	// Blobs are the digests of the blobs kept for the image: its manifest,
	// config and layers, and indexes that led to it.
	Blobs []string `json:"blobs"`
}

func (r *record) artifact(s *Store) *Artifact {
	a := &Artifact{
		ImageID:    r.ImageID,
		Packaging:  r.Packaging,
		Platform:   r.Platform,
		Entrypoint: slices.Clone(r.Entrypoint),
		Cmd:        slices.Clone(r.Cmd),
		Env:        slices.Clone(r.Env),
		WorkingDir: r.WorkingDir,
		User:       r.User,
	}
	if r.RootFS {
		a.RootFS = s.rootfsPath(r.ImageID)
	} else {
		a.ModulePath = s.modulePath(r.Module)
	}
	return a
}

// refEntry is the content of a refs/ file.
type refEntry struct {
	Ref     string `json:"ref"`
	ImageID string `json:"imageID"`
}

func (s *Store) path(rel string) string { return filepath.Join(s.dir, rel) }

// hexOf returns the hex part of a "sha256:<hex>" digest, or an error for
// other algorithms and malformed digests.
func hexOf(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", fmt.Errorf("unsupported digest %q", digest)
	}
	return h, nil
}

// blobPath and modulePath take digests already checked by hexOf.
func (s *Store) blobPath(digest string) string {
	return filepath.Join(s.dir, blobsDir, strings.TrimPrefix(digest, "sha256:"))
}

func (s *Store) modulePath(digest string) string {
	return filepath.Join(s.dir, modulesDir, strings.TrimPrefix(digest, "sha256:")+".wasm")
}

func (s *Store) rootfsPath(imageID string) string {
	return filepath.Join(s.dir, rootfsDir, strings.TrimPrefix(imageID, "sha256:"))
}

func (s *Store) recordPath(imageID string) string {
	return filepath.Join(s.dir, imagesDir, strings.TrimPrefix(imageID, "sha256:")+".json")
}

func (s *Store) refPath(r name.Reference) string {
	sum := sha256.Sum256([]byte(r.Name()))
	return filepath.Join(s.dir, refsDir, hex.EncodeToString(sum[:])+".json")
}

func (s *Store) readRecord(imageID string) (*record, error) {
	if _, err := hexOf(imageID); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(s.recordPath(imageID))
	if err != nil {
		return nil, err
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		// Pulled again, as if it were not there.
		s.log.Warn("cache record corrupt; removed", "imageID", imageID, "err", err)
		if err := os.Remove(s.recordPath(imageID)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("read cache record %s: %w", imageID, os.ErrNotExist)
	}
	if rec.Module != "" {
		if _, err := hexOf(rec.Module); err != nil {
			return nil, fmt.Errorf("read cache record %s: module: %w", imageID, err)
		}
	}
	return &rec, nil
}

// saveRecord writes rec, keeping the blobs an existing record of the same
// image lists (other indexes may lead to it).
func (s *Store) saveRecord(rec *record) error {
	s.records.Lock()
	defer s.records.Unlock()
	defer s.forgetLookups()
	if old, err := s.readRecord(rec.ImageID); err == nil {
		rec.Blobs = append(rec.Blobs, old.Blobs...)
	}
	rec.Blobs = slices.Compact(slices.Sorted(slices.Values(rec.Blobs)))
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.writeFileAtomic(s.recordPath(rec.ImageID), b)
}

func (s *Store) readRef(r name.Reference) (string, error) {
	b, err := os.ReadFile(s.refPath(r))
	if err != nil {
		return "", err
	}
	var e refEntry
	if err := json.Unmarshal(b, &e); err != nil {
		s.log.Warn("cache entry corrupt; removed", "ref", r.Name(), "err", err)
		if err := os.Remove(s.refPath(r)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		return "", fmt.Errorf("read cache entry for %s: %w", r.Name(), os.ErrNotExist)
	}
	return e.ImageID, nil
}

func (s *Store) saveRef(r name.Reference, imageID string) error {
	defer s.forgetLookups()
	b, err := json.Marshal(refEntry{Ref: r.Name(), ImageID: imageID})
	if err != nil {
		return err
	}
	return s.writeFileAtomic(s.refPath(r), b)
}

// writeFileAtomic writes data to path through a temporary file, so that
// readers see the old or the new content, never a part, also after a
// crash: the content reaches the disk before the rename does.
func (s *Store) writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(s.path(tmpDir), "write-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename this fails harmlessly
	_, err = f.Write(data)
	if err == nil {
		err = syncFile(f)
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return err
	}
	return s.rename(f.Name(), path)
}

// rename renames a file of tmp/ into place and syncs the directory it
// lands in, so that the new name survives a crash.
func (s *Store) rename(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	return syncDir(filepath.Dir(to))
}

// noSync turns syncDir, syncFile and syncTree off: fuzz targets, which
// unpack thousands of layers a second, do without waiting for the disk.
var noSync bool

// syncFile flushes f's content to the disk.
func syncFile(f *os.File) error {
	if noSync {
		return nil
	}
	return f.Sync()
}

// syncDir flushes a directory's entries to the disk. Where directories
// cannot be synced (Windows) it does nothing.
func syncDir(dir string) error {
	if noSync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}

// storeVerified copies r to path if its content has the given digest and
// size; otherwise nothing is written. It reads at most one byte more than
// size: a source that sends more is cut off.
func (s *Store) storeVerified(path, digest string, size int64, r io.Reader) error {
	if size < 0 {
		return fmt.Errorf("blob %s has no size", digest)
	}
	f, err := os.CreateTemp(s.path(tmpDir), "blob-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename this fails harmlessly
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, size+1))
	if err == nil && n > size {
		err = fmt.Errorf("blob %s is larger than its descriptor's %d bytes: cut off", digest, size)
	}
	if err == nil {
		err = syncFile(f)
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("content of %s has %d bytes, want %d", digest, n, size)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("content of %s has digest %s", digest, got)
	}
	if err := s.rename(f.Name(), path); err != nil {
		return err
	}
	s.wrote(n)
	return nil
}

// GC removes the cached images whose image IDs are not in keep, with their
// modules, blobs and the references that resolved to them. Blobs and modules
// shared with a kept image stay. Pulls wait while GC runs.
func (s *Store) GC(keep map[string]bool) error {
	s.gc.Lock()
	defer s.gc.Unlock()
	defer s.forgetLookups()
	defer s.forgetVerified()
	if err := s.gcLocked(keep); err != nil {
		return fmt.Errorf("collect image cache garbage: %w", err)
	}
	return nil
}

func (s *Store) gcLocked(keep map[string]bool) error {
	var errs []error
	remove := func(path string) {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}

	liveBlobs := map[string]bool{}
	liveModules := map[string]bool{}
	liveImages := map[string]bool{}
	liveRootFS := map[string]bool{}
	entries, err := os.ReadDir(s.path(imagesDir))
	if err != nil {
		return err
	}
	for _, e := range entries {
		id := "sha256:" + strings.TrimSuffix(e.Name(), ".json")
		rec, err := s.readRecord(id)
		if err != nil || !keep[id] {
			s.log.Info("image removed from cache", "imageID", id)
			remove(filepath.Join(s.path(imagesDir), e.Name()))
			continue
		}
		liveImages[id] = true
		if rec.RootFS {
			liveRootFS[strings.TrimPrefix(id, "sha256:")] = true
		} else {
			liveModules[strings.TrimPrefix(rec.Module, "sha256:")+".wasm"] = true
		}
		for _, b := range rec.Blobs {
			liveBlobs[strings.TrimPrefix(b, "sha256:")] = true
		}
	}

	if entries, err = os.ReadDir(s.path(refsDir)); err != nil {
		return err
	}
	for _, e := range entries {
		path := filepath.Join(s.path(refsDir), e.Name())
		var ref refEntry
		if b, err := os.ReadFile(path); err != nil || json.Unmarshal(b, &ref) != nil || !liveImages[ref.ImageID] {
			remove(path)
		}
	}
	for dir, live := range map[string]map[string]bool{blobsDir: liveBlobs, modulesDir: liveModules} {
		entries, err := os.ReadDir(s.path(dir))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !live[e.Name()] {
				remove(filepath.Join(s.path(dir), e.Name()))
			}
		}
	}
	if entries, err = os.ReadDir(s.path(rootfsDir)); err != nil {
		return err
	}
	for _, e := range entries {
		if !liveRootFS[e.Name()] {
			if err := removeTree(filepath.Join(s.path(rootfsDir), e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

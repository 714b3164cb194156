package image

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// InUse names the images Collect must keep.
type InUse struct {
	// Refs are references as containers name them; each keeps the image
	// it resolves to in the cache.
	Refs []string
	// ImageIDs keep images by ID: those running containers were started
	// from, which a moved tag no longer resolves to.
	ImageIDs []string
}

// lowWater is the share of the budget a collection over budget frees the
// cache down to, so that the next pull does not start another.
const lowWater = 0.8

// Usage returns the bytes the cache holds, as counted by the last
// collection and added to by pulls since. It is zero before the first
// collection.
func (s *Store) Usage() int64 { return s.usage.Load() }

// Collect removes the cached images that inUse does not name and that
// either have not been used for Config.MaxUnusedAge, or, while the cache
// holds more than Config.MaxBytes, were used least recently: until it
// holds at most 80 % of the budget. After a pull found the disk full, it
// removes every image inUse does not name. An image is used when inUse names it
// at a collection, or when it is pulled. now is the collection's time.
// Files no image needs (downloads interrupted, modules extracted for
// kubectl exec) are removed too. Pulls wait while Collect runs.
func (s *Store) Collect(inUse InUse, now time.Time) error {
	keep := s.resolveInUse(inUse)
	s.gc.Lock()
	defer s.gc.Unlock()
	return s.collectLocked(keep, now)
}

// resolveInUse turns inUse into the image IDs it names.
func (s *Store) resolveInUse(inUse InUse) map[string]bool {
	keep := map[string]bool{}
	for _, id := range inUse.ImageIDs {
		keep[id] = true
	}
	for _, ref := range inUse.Refs {
		r, err := s.parse(ref)
		if err != nil {
			continue
		}
		s.gc.RLock()
		rec, err := s.lookupFiles(r)
		s.gc.RUnlock()
		if err == nil {
			keep[rec.ImageID] = true
		}
	}
	return keep
}

// cachedImage is what collectLocked knows of one image.
type cachedImage struct {
	id       string
	lastUsed time.Time
	files    []string // paths of its content, relative to the cache
}

func (s *Store) collectLocked(keep map[string]bool, now time.Time) error {
	defer s.forgetLookups()
	defer s.forgetVerified()

	sizes, total, err := s.du()
	if err != nil {
		return fmt.Errorf("collect image cache garbage: %w", err)
	}
	entries, err := os.ReadDir(s.path(imagesDir))
	if err != nil {
		return fmt.Errorf("collect image cache garbage: %w", err)
	}
	s.lastUsedMu.Lock()
	defer s.lastUsedMu.Unlock()
	if s.lastUsed == nil {
		s.lastUsed = map[string]time.Time{}
	}
	var images []*cachedImage
	users := map[string]int{} // images per file
	for _, e := range entries {
		id := "sha256:" + strings.TrimSuffix(e.Name(), ".json")
		rec, err := s.readRecord(id)
		if err != nil {
			continue // removed below: no record, no image
		}
		img := &cachedImage{id: id, lastUsed: s.lastUsed[id]}
		if keep[id] {
			img.lastUsed = now
		} else if img.lastUsed.IsZero() {
			// Not seen since the agent started: last used when pulled.
			if fi, err := e.Info(); err == nil {
				img.lastUsed = fi.ModTime()
			} else {
				img.lastUsed = now
			}
		}
		s.lastUsed[id] = img.lastUsed
		if rec.RootFS {
			img.files = append(img.files, filepath.Join(rootfsDir, strings.TrimPrefix(id, "sha256:")))
		} else {
			img.files = append(img.files, filepath.Join(modulesDir, strings.TrimPrefix(rec.Module, "sha256:")+".wasm"))
		}
		for _, b := range rec.Blobs {
			img.files = append(img.files, filepath.Join(blobsDir, strings.TrimPrefix(b, "sha256:")))
		}
		img.files = append(img.files, filepath.Join(imagesDir, e.Name()))
		for _, f := range img.files {
			users[f]++
		}
		images = append(images, img)
	}

	remove := map[string]bool{}
	// freed is what removing img gives back: the files no other image
	// left needs.
	free := func(img *cachedImage) {
		remove[img.id] = true
		for _, f := range img.files {
			if users[f]--; users[f] == 0 {
				total -= sizes[f]
			}
		}
	}
	unused := slices.DeleteFunc(slices.Clone(images), func(img *cachedImage) bool { return keep[img.id] })
	slices.SortFunc(unused, func(a, b *cachedImage) int {
		return cmp.Or(a.lastUsed.Compare(b.lastUsed), strings.Compare(a.id, b.id))
	})
	for _, img := range unused {
		if s.maxUnusedAge > 0 && now.Sub(img.lastUsed) >= s.maxUnusedAge {
			s.log.Info("image unused too long; removing", "imageID", img.id, "lastUsed", img.lastUsed)
			free(img)
		}
	}
	if s.diskFull.Swap(false) {
		for _, img := range unused {
			if !remove[img.id] {
				s.log.Info("disk full; removing unused image", "imageID", img.id, "lastUsed", img.lastUsed)
				free(img)
			}
		}
	}
	if s.maxBytes > 0 && total > s.maxBytes {
		target := int64(float64(s.maxBytes) * lowWater)
		for _, img := range unused {
			if total <= target {
				break
			}
			if !remove[img.id] {
				s.log.Info("image cache over budget; removing least recently used image", "imageID", img.id, "lastUsed", img.lastUsed, "budget", s.maxBytes)
				free(img)
			}
		}
		if total > s.maxBytes {
			s.log.Warn("image cache over budget with every image in use", "bytes", total, "budget", s.maxBytes)
		}
	}

	live := map[string]bool{}
	for _, img := range images {
		if !remove[img.id] {
			live[img.id] = true
		} else {
			delete(s.lastUsed, img.id)
		}
	}
	err = s.gcLocked(live)
	// Count again: gcLocked also removed what no image needed.
	if _, counted, duErr := s.du(); duErr == nil {
		total = counted
	}
	s.usage.Store(total)
	if err != nil {
		return fmt.Errorf("collect image cache garbage: %w", err)
	}
	return nil
}

// du returns the size of each file or root filesystem of the cache, by
// path relative to the cache, and their total.
func (s *Store) du() (map[string]int64, int64, error) {
	sizes := map[string]int64{}
	var total int64
	err := filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(s.dir, p)
		// A root filesystem counts as one.
		if r, ok := strings.CutPrefix(rel, rootfsDir+string(filepath.Separator)); ok {
			if i := strings.IndexRune(r, filepath.Separator); i >= 0 {
				rel = filepath.Join(rootfsDir, r[:i])
			}
		}
		sizes[rel] += fi.Size()
		total += fi.Size()
		return nil
	})
	return sizes, total, err
}

// gcRetry is how soon RunGC tries again a collection that pulls in
// progress held off.
const gcRetry = time.Second

// RunGC collects at once, then every interval, and whenever a pull takes
// the cache past its budget or finds the device's disk full, until ctx
// ends. inUse says each time which images to keep; it is not called with
// any lock held. A collection waits for no pull: while one is in
// progress, it is tried again a second later.
func (s *Store) RunGC(ctx context.Context, interval time.Duration, inUse func() InUse) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	retry := time.NewTimer(0) // the first collection
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-s.gcKick:
		case <-retry.C:
		}
		keep := s.resolveInUse(inUse())
		if !s.gc.TryLock() {
			retry.Reset(gcRetry)
			continue
		}
		err := s.collectLocked(keep, time.Now())
		s.gc.Unlock()
		if err != nil {
			s.log.Warn("image cache garbage not collected", "err", err)
		}
	}
}

// kickGC has RunGC collect soon.
func (s *Store) kickGC() {
	select {
	case s.gcKick <- struct{}{}:
	default:
	}
}

// wrote counts n bytes the cache holds more, and has RunGC collect if
// that takes it past the budget.
func (s *Store) wrote(n int64) {
	if u := s.usage.Add(n); s.maxBytes > 0 && u > s.maxBytes {
		s.kickGC()
	}
}

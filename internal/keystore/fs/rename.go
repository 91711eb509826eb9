package fs

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"

	"github.com/openkes/kes/internal/keystore"
)

var _ keystore.Renamer = (*Store)(nil)

// Rename moves the file from to the free name to; see [keystore.Renamer].
// It links the file to the new name, which fails if the name exists,
// waits for a shared sync, removes the old name and waits for another.
// The first sync orders the two steps on disk: without a journal, a
// power cut could otherwise keep the removal and lose the link, and with
// them the value. A crash at any point leaves the file under from, under
// to or under both (one file with two links), never neither. It returns
// an error matching keystore.ErrNotFound if there is no file from, one
// matching keystore.ErrExists if to exists and one wrapping
// [ErrInvalidName] for a name the directory cannot hold. Anything but a
// regular file is left in place and reported as an error. If from is
// replaced while the link is synced (by [Store.Replace]), the new file
// stays under from and Rename fails: the old one is under to.
func (s *Store) Rename(ctx context.Context, from, to string) error {
	if err := validName(from); err != nil {
		return err
	}
	if err := validName(to); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	root, err := s.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	done, linked, err := s.link(ctx, root, from, to)
	if err != nil {
		return err
	}
	defer func() {
		s.mu.Lock()
		delete(s.renaming, from)
		s.mu.Unlock()
		close(done)
	}()
	s.step("rename-linked", to)
	if err := s.commit(ctx); err != nil {
		return fmt.Errorf("fs: rename %q: %w", from, err)
	}
	s.step("rename-durable", to)
	if err := s.unlinkSame(root, from, to, linked); err != nil {
		return err
	}
	s.step("rename-unlinked", to)
	if err := s.commit(ctx); err != nil {
		return fmt.Errorf("fs: rename %q: %w", from, err)
	}
	return nil
}

// link links the regular file from to to and adds to to the index, as
// one step with respect to Create's link, Delete and Replace. It marks
// from as being renamed until the returned channel is closed, after
// waiting for a Rename of this Store that moves it already: two renames
// of one name must not both link it. It returns the linked file's info.
func (s *Store) link(ctx context.Context, root *os.Root, from, to string) (chan struct{}, iofs.FileInfo, error) {
	s.mu.Lock()
	for {
		busy, ok := s.renaming[from]
		if !ok {
			break
		}
		s.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	fi, err := s.linkLocked(root, from, to)
	if err != nil {
		return nil, nil, err
	}
	if s.renaming == nil {
		s.renaming = make(map[string]chan struct{})
	}
	done := make(chan struct{})
	s.renaming[from] = done
	return done, fi, nil
}

// linkLocked is link's work, with s.mu held.
func (s *Store) linkLocked(root *os.Root, from, to string) (iofs.FileInfo, error) {
	fi, err := root.Lstat(from)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, fmt.Errorf("fs: rename %q: %w", from, keystore.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("fs: rename %q: %w", from, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("fs: rename %q: not a regular file", from)
	}
	err = root.Link(from, to)
	switch {
	case errors.Is(err, iofs.ErrExist):
		return nil, fmt.Errorf("fs: rename %q to %q: %w", from, to, keystore.ErrExists)
	case errors.Is(err, iofs.ErrNotExist): // removed by another process since the Lstat
		return nil, fmt.Errorf("fs: rename %q: %w", from, keystore.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("fs: rename %q: %w", from, err)
	}
	s.idx.added(to)
	return fi, nil
}

// unlinkSame removes from, which link made a second name of the file
// linked (now also named to), and drops it from the index, unless from
// names another file now (a Replace meanwhile) or is gone (a Delete took
// it, which is success: the value is under to).
func (s *Store) unlinkSame(root *os.Root, from, to string, linked iofs.FileInfo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fromFI, err := root.Lstat(from)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fs: rename %q: %w", from, err)
	}
	if !os.SameFile(fromFI, linked) {
		return fmt.Errorf("fs: rename %q: replaced while renamed; the old value is under %q", from, to)
	}
	if err := root.Remove(from); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("fs: rename %q: %w", from, err) // both names hold the value
	}
	s.idx.removed(from)
	return nil
}

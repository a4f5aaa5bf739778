//! The files staged in one import's transaction, numbered in the order
//! they were written (file `N` of the staging folder), without an
//! allocation per file: the paths go to a [`SpillLog`] (in the staging
//! folder once past its first MiB), and a keyed hash of each path points
//! at where its record starts, so a path staged again is found by reading
//! that one record back.

use std::io;
use std::path::Path;

use crate::spill::{LoggedNames, SpillLog};

/// Staged paths, in staging order (see the module docs).
#[derive(Default)]
pub(super) struct Staged {
    /// Each path → where its record starts in `log`.
    names: LoggedNames,
    log: SpillLog,
    count: usize,
}

impl Staged {
    /// An empty set whose log goes to `folder` once past its first MiB.
    pub(super) fn in_folder(folder: &Path) -> Staged {
        let mut s = Staged::default();
        s.log.spill_to(Some(folder.to_owned()));
        s
    }

    /// Number of paths staged.
    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// Whether `path` was staged.
    pub(super) fn contains(&mut self, path: &str) -> io::Result<bool> {
        let log = &mut self.log;
        self.names
            .contains(path, |at| Ok(path_at(log, at)? == path))
    }

    /// Stages `path` (which must not be staged already) as number
    /// [`Staged::len`].
    pub(super) fn insert(&mut self, path: &str) -> io::Result<()> {
        let len = u32::try_from(path.len())
            .map_err(|_| io::Error::other("a staged path longer than 4 GiB"))?;
        let at = self.log.len();
        self.log.append_with(4 + path.len(), |b| {
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(path.as_bytes());
        })?;
        self.names.insert(path, at);
        self.count += 1;
        Ok(())
    }

    /// Hands each staged path to `f` with its number, in staging order.
    pub(super) fn for_each(
        &mut self,
        f: &mut dyn FnMut(usize, &str) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut n = 0usize;
        let cut = || io::Error::other("a staged path's record is cut short");
        self.log.for_each_chunk(&mut |chunk| {
            let mut rest = chunk;
            while !rest.is_empty() {
                let (head, tail) = rest.split_at_checked(4).ok_or_else(cut)?;
                let len = head.try_into().map(u32::from_le_bytes).map_err(|_| cut())?;
                let len = usize::try_from(len).map_err(io::Error::other)?;
                let (path, tail) = tail.split_at_checked(len).ok_or_else(cut)?;
                let path = std::str::from_utf8(path).map_err(io::Error::other)?;
                f(n, path)?;
                n += 1;
                rest = tail;
            }
            Ok(())
        })
    }
}

/// The path whose record starts at `at` in `log`.
fn path_at(log: &mut SpillLog, at: u64) -> io::Result<String> {
    let head = log.read_at(at, 4)?;
    let len = head
        .try_into()
        .map(u32::from_le_bytes)
        .map_err(|_| io::Error::other("a staged path's record is cut short"))?;
    let len = usize::try_from(len).map_err(io::Error::other)?;
    String::from_utf8(log.read_at(at + 4, len)?).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(i: usize) -> String {
        format!("users/u/images/{i:08}-{}.png", "x".repeat(i % 50))
    }

    #[test]
    fn staged_paths_are_found_and_walked_in_order_from_memory_or_the_file() {
        for (spill, collide) in [(false, false), (true, false), (true, true), (false, true)] {
            let dir = tempfile::tempdir().unwrap();
            let mut s = match spill {
                true => Staged::in_folder(dir.path()),
                false => Staged::default(),
            };
            s.names.all_collide = collide;
            // Enough paths for several 1 MiB chunks without the collisions
            // (a set where every path collides holds them all in memory).
            let n = if collide { 3_000 } else { 40_000 };
            for i in 0..n {
                assert!(!s.contains(&path(i)).unwrap(), "{i}");
                s.insert(&path(i)).unwrap();
            }
            assert_eq!(s.len(), n);
            assert_eq!(s.log.spilled(), spill && !collide);
            for i in [0, 1, n / 2, n - 1] {
                assert!(s.contains(&path(i)).unwrap(), "{i} {spill} {collide}");
            }
            assert!(!s.contains("users/u/images/absent.png").unwrap());
            assert!(!s.contains(&path(n)).unwrap());
            let mut seen = 0;
            for _ in 0..2 {
                seen = 0;
                s.for_each(&mut |k, p| {
                    assert_eq!(k, seen);
                    assert_eq!(p, path(k));
                    seen += 1;
                    Ok(())
                })
                .unwrap();
            }
            assert_eq!(seen, n);
            drop(s);
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
    }
}

//! One process per database file: an advisory lock on a small file beside the database
//! (`<file>-livesync-lock`), held while the database is open.
//!
//! Two processes writing one file would each count upload ids on their own (and collide
//! in `ps_crud`), and neither would hear the other's commits, so a second process is
//! refused with [`Error::OpenInAnotherProcess`]. Within one process, `Database::open`
//! shares the handle already open instead (see `database.rs`). The operating system
//! releases the lock when the process ends, however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The held lock; dropping it releases the file.
#[derive(Debug)]
pub(crate) struct ProcessLock {
    _file: File,
}

impl ProcessLock {
    /// Takes the lock of the database at `path`. `None` when there is nothing to lock:
    /// an SQLite URI, or a directory where the lock file cannot be created (SQLite then
    /// reports the real problem, such as a read-only directory, when it opens the file).
    pub(crate) fn acquire(path: &Path) -> Result<Option<Self>> {
        let Some(lock_path) = lock_path(path) else {
            return Ok(None);
        };
        let file = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
        {
            Ok(file) => file,
            Err(error) => {
                tracing::debug!(%error, path = %lock_path.display(), "no lock file; not locking");
                return Ok(None);
            }
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(TryLockError::WouldBlock) => Err(Error::OpenInAnotherProcess {
                path: path.to_path_buf(),
            }),
            Err(TryLockError::Error(error)) => {
                // File systems without locks (some network mounts): open unlocked.
                tracing::warn!(%error, path = %lock_path.display(), "cannot lock the database file; another process could open it too");
                Ok(None)
            }
        }
    }
}

/// `<file>-livesync-lock`, or `None` for an SQLite URI.
fn lock_path(path: &Path) -> Option<PathBuf> {
    let text = path.to_str()?;
    if text.starts_with("file:") {
        return None;
    }
    let mut name = path.file_name()?.to_os_string();
    name.push("-livesync-lock");
    Some(path.with_file_name(name))
}

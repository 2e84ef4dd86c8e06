//! One process at a time per data dir: `serve` holds an exclusive lock on
//! `<data dir>/auditrelay.lock` for its whole life, and `auditrelay keys rotate` takes the same
//! lock, so a rotation never races a running server that would go on sealing under the old key.
//! The lock is the operating system's (flock on Unix), released when the process exits, even
//! on SIGKILL; the file itself stays and means nothing.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use anyhow::{bail, Context};

const LOCK_FILE: &str = "auditrelay.lock";

/// Held while alive.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock, or fails at once naming what holds it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<DataDirLock> {
        let path = data_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(DataDirLock { _file: file }),
            Err(TryLockError::WouldBlock) => bail!(
                "another auditrelay process (a running server?) is using the data dir {}; stop it first",
                data_dir.display()
            ),
            Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }

    /// For `serve`: a data dir on a filesystem without locks (some network mounts) still
    /// serves, with a warning, rather than refusing to start; a lock held elsewhere still stops it.
    pub fn acquire_for_serve(data_dir: &Path) -> anyhow::Result<Option<DataDirLock>> {
        match Self::acquire(data_dir) {
            Ok(lock) => Ok(Some(lock)),
            Err(e) if e.downcast_ref::<std::io::Error>().is_some() => {
                tracing::warn!(error = %format!("{e:#}"), "cannot lock the data dir; `keys rotate` cannot tell that this server runs");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        assert!(err.to_string().contains("stop it first"), "{err}");
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }
}

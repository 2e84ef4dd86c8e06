//! The cursor file of `tail --cursor-file`: one decimal offset, the position to resume after.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The cursor file could not be read, written, or understood.
///
/// The `io::Error` is part of the message rather than a `source`, so that a report does not
/// print it twice.
#[derive(Debug, thiserror::Error)]
pub enum CursorFileError {
    #[error("reading cursor file {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    #[error(
        "cursor file {} does not hold an offset (found {found:?}); fix or delete it",
        path.display()
    )]
    Invalid { path: PathBuf, found: String },
    #[error("writing cursor file {}: {error}", path.display())]
    Write { path: PathBuf, error: io::Error },
}

/// The offset stored in `path`, or `None` when the file does not exist (a first run).
///
/// A file that exists but does not hold a number is an error rather than "start from 0": the
/// file is only ever replaced whole (see [`write_cursor_file`]), so garbage in it means someone
/// else wrote it, and silently re-reading the whole log would flood whatever consumes the output.
pub fn read_cursor_file(path: &Path) -> Result<Option<u64>, CursorFileError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(CursorFileError::Read {
                path: path.to_path_buf(),
                error,
            })
        }
    };
    let trimmed = text.trim();
    trimmed.parse::<u64>().map(Some).map_err(|_| CursorFileError::Invalid {
        path: path.to_path_buf(),
        found: trimmed.chars().take(40).collect(),
    })
}

/// Stores `offset` in `path` atomically: written to a temporary file in the same directory,
/// synced, then renamed over `path`. A crash or power cut at any point leaves either the old
/// offset or the new one, never a torn or empty file, so a restart neither skips nor repeats
/// more than the batch that was being printed.
pub fn write_cursor_file(path: &Path, offset: u64) -> Result<(), CursorFileError> {
    let wrap = |error| CursorFileError::Write {
        path: path.to_path_buf(),
        error,
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| wrap(io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name")))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);

    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        writeln!(f, "{offset}")?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // Make the rename itself durable. Directories cannot be opened this way everywhere
        // (Windows), and the data is already safe in the file, so this is best effort.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(wrap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cursor");
        assert_eq!(read_cursor_file(&path).ok(), Some(None));
        write_cursor_file(&path, 42).expect("write");
        assert_eq!(read_cursor_file(&path).ok(), Some(Some(42)));
        write_cursor_file(&path, u64::MAX).expect("overwrite");
        assert_eq!(read_cursor_file(&path).ok(), Some(Some(u64::MAX)));
        // Only the cursor file is left behind, no temporary files.
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("cursor")]);
    }

    #[test]
    fn tolerates_whitespace_rejects_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c");
        fs::write(&path, "  17\r\n").expect("write");
        assert_eq!(read_cursor_file(&path).ok(), Some(Some(17)));
        fs::write(&path, "").expect("write");
        assert!(matches!(read_cursor_file(&path), Err(CursorFileError::Invalid { .. })));
        fs::write(&path, "-3").expect("write");
        assert!(matches!(read_cursor_file(&path), Err(CursorFileError::Invalid { .. })));
    }

    #[test]
    fn write_into_missing_directory_fails_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing").join("c");
        assert!(matches!(
            write_cursor_file(&path, 1),
            Err(CursorFileError::Write { .. })
        ));
    }
}

//! The vocabulary of auditrelay. Nothing in this crate does I/O (invariant *`core` and `format` do no I/O* in ARCHITECTURE.md):
//! it turns bytes a client sent into validated events, and names the things the rest of the
//! system passes around.

pub mod event;
mod fast;
pub mod field_path;
pub mod glob;
pub mod ids;
pub mod ingest;
mod ingest_error;
mod jcs;
pub mod limits;
pub mod time;
mod validate;

pub use event::{EventTimes, NewEvent, ParsedEvent, StoredEvent};
pub use field_path::{parse_at, Bounded, FieldError};
pub use glob::{GlobError, TypeFilter};
pub use ingest::{parse_request, BodyFormat, IngestError};
pub use limits::Limits;
pub use validate::integral;

#[cfg(test)]
mod tests {
    //! The workspace's layering rules, checked from the crates' own files (this test reads
    //! files; the crates it checks never do). They live here because `core` is the crate every
    //! other one builds on.

    use std::path::{Path, PathBuf};

    fn crate_dir(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
    }

    /// The `[dependencies]` table of a crate's manifest.
    fn dependencies(name: &str) -> String {
        let manifest = std::fs::read_to_string(crate_dir(name).join("Cargo.toml")).unwrap();
        let deps = manifest.split("[dependencies]").nth(1).unwrap();
        deps.split("\n[").next().unwrap().to_owned()
    }

    /// Invariant *`core` and `format` do no I/O* (nor does `pipeline`, the filter and
    /// transform): none depends on an I/O crate nor names an I/O module outside its tests.
    #[test]
    fn core_and_format_do_no_io() {
        for name in ["core", "format", "pipeline"] {
            let deps = dependencies(name);
            assert!(deps.contains("serde_json"), "{name}: the scan read the dependencies");
            for io_crate in ["tokio", "reqwest", "hyper", "rusqlite", "sqlx", "mio", "socket2"] {
                assert!(!deps.contains(io_crate), "{name} depends on {io_crate}");
            }
            let mut sources = 0;
            for entry in std::fs::read_dir(crate_dir(name).join("src")).unwrap() {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap();
                for io in ["std::fs", "std::net::Tcp", "std::net::Udp", "std::process", "tokio::"] {
                    assert!(!code.contains(io), "{} names {io}", path.display());
                }
                sources += 1;
            }
            assert!(sources >= 3, "{name}: the scan found the sources");
        }
    }

    /// Invariant *sinks classify, the engine decides*: only the engine touches the store, so
    /// the sinks crate cannot even name the store or the engine.
    #[test]
    fn sinks_depend_on_neither_the_store_nor_the_engine() {
        let deps = dependencies("sinks");
        assert!(deps.contains("auditrelay-format"), "the scan read the dependencies");
        for name in ["auditrelay-store", "auditrelay-engine"] {
            assert!(!deps.contains(name), "sinks depend on {name}");
        }
    }
}

//! `auditrelay keys rotate`: re-seal every sink's secrets under a new master key.
//!
//! The procedure is ordered so that a crash at any point leaves every secret readable:
//! 1. the new key is stored as a retired key (`master-keys/<id>.key`) before anything is sealed
//!    under it, and the old key is kept there too;
//! 2. every sink is opened with the keys known and sealed again under the new key;
//! 3. the SQLite file is rebuilt (`VACUUM`) and its WAL emptied, so the old ciphertexts are not
//!    left in free pages or old WAL frames;
//! 4. `master.key` is replaced by the new key (write, then rename).
//!
//! A re-run after a crash finishes the job: blobs already under the new key open with it.
//! With `AUDITRELAY_MASTER_KEY` set, keys are the operator's to keep: nothing is written to the
//! data dir, and the operator swaps the variable (see SECURITY.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use auditrelay_engine::Keyring;
use auditrelay_store::sqlite::SqliteStore;
use auditrelay_store::{SinkStore, Store, StoreError};

use crate::config::{ServeArgs, Settings};
use crate::data_lock::DataDirLock;
use crate::keyfiles;

#[derive(clap::Args, Debug)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// Re-encrypt every sink secret under a new master key (the server must be stopped).
    Rotate(RotateArgs),
}

#[derive(clap::Args, Debug)]
pub struct RotateArgs {
    /// The server's data dir.
    #[arg(long, env = "AUDITRELAY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The server's TOML file (for `data_dir`, `master_key`, `previous_master_keys`).
    #[arg(long, env = "AUDITRELAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// The new key (32 bytes of base64) in a file; without it a random key is generated.
    #[arg(long)]
    pub new_master_key_file: Option<PathBuf>,
    /// After a successful rotation, delete the retired keys from the data dir (backups sealed
    /// under them can then no longer be opened).
    #[arg(long)]
    pub drop_retired: bool,
}

impl KeysArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            KeysCommand::Rotate(args) => rotate(args).await,
        }
    }
}

/// What a rotation did, for the summary line and tests.
#[derive(Debug)]
pub struct Rotation {
    pub resealed: usize,
    pub from: String,
    pub to: String,
}

async fn rotate(args: RotateArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(&ServeArgs {
        data_dir: args.data_dir.clone(),
        config: args.config.clone(),
        ..ServeArgs::default()
    })?;
    if settings.database_url.is_some() {
        bail!("keys rotate works on the embedded store only (unset --database-url / AUDITRELAY_DATABASE_URL)");
    }
    let data_dir = settings.data_dir.clone();
    if !data_dir.is_dir() {
        bail!("no data dir at {}", data_dir.display());
    }
    let _lock = DataDirLock::acquire(&data_dir)?;
    // A key from the environment or the config file is the operator's to keep, not ours to write.
    let from_env = settings.master_key.is_some();
    let old = keyfiles::current_key(&data_dir, settings.master_key.as_deref())?.with_context(|| {
        format!(
            "no master key in {} and none configured: nothing to rotate",
            data_dir.display()
        )
    })?;
    let (new, generated) = match &args.new_master_key_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            (
                keyfiles::decode_key(&text, &format!("the master key in {}", path.display()))?,
                false,
            )
        }
        None => (keyfiles::generate_key(), true),
    };
    if new == old {
        bail!("the new master key is the current one");
    }
    // Both rings know both keys: a re-run after a crash meets blobs under either.
    let opening =
        keyfiles::with_retired(Keyring::new(&old), &data_dir, &settings.previous_master_keys)?.with_retired([&new]);
    let sealing = Keyring::new(&new);

    if !from_env {
        keyfiles::write_retired_key(&data_dir, &old)?;
        keyfiles::write_retired_key(&data_dir, &new)?;
    }
    let store =
        SqliteStore::open(&data_dir, None).with_context(|| format!("opening the log in {}", data_dir.display()))?;
    let db_path = store.path().to_path_buf();
    let store: Arc<dyn Store> = Arc::new(store);
    let resealed = reseal_all(store.as_ref(), &opening, &sealing).await;
    store.close().await;
    let resealed = resealed?;
    compact(&db_path)?;

    let rotation = Rotation {
        resealed,
        from: opening.current_id().to_string(),
        to: sealing.current_id().to_string(),
    };
    if from_env {
        println!(
            "auditrelay: re-sealed {} sink(s) from master key {} to {}.",
            rotation.resealed, rotation.from, rotation.to
        );
        if generated {
            println!(
                "auditrelay: the new master key (shown once; store it now): {}",
                keyfiles::encode_key(&new)
            );
        }
        println!(
            "auditrelay: set AUDITRELAY_MASTER_KEY (or `master_key` in the config file) to the new key \
             before starting the server (AUDITRELAY_PREVIOUS_MASTER_KEYS may keep the old one for backups)."
        );
    } else {
        keyfiles::replace_master_key(&data_dir, &new)?;
        // The new key is master.key now; its copy among the retired keys is redundant.
        remove_if_present(&retired_path(&data_dir, &sealing))?;
        if args.drop_retired {
            let dir = data_dir.join(keyfiles::RETIRED_KEYS_DIR);
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        println!(
            "auditrelay: re-sealed {} sink(s) from master key {} to {}; master.key replaced{}.",
            rotation.resealed,
            rotation.from,
            rotation.to,
            if args.drop_retired {
                ", retired keys deleted"
            } else {
                "; the old key is kept in master-keys/ to open backups"
            }
        );
    }
    Ok(())
}

fn retired_path(data_dir: &Path, ring: &Keyring) -> PathBuf {
    data_dir
        .join(keyfiles::RETIRED_KEYS_DIR)
        .join(format!("{}.key", ring.current_id()))
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// Opens every sink's secrets with `opening` and stores them sealed by `sealing`. Rows already
/// under the sealing key are left alone. Returns how many rows were re-sealed.
pub async fn reseal_all(store: &dyn SinkStore, opening: &Keyring, sealing: &Keyring) -> anyhow::Result<usize> {
    let mut after: Option<String> = None;
    let mut resealed = 0;
    loop {
        let page = store.list_sinks(None, after.as_deref(), 500).await?;
        for mut row in page.iter().cloned() {
            if sealing.is_current(&row.sealed_secrets) {
                continue;
            }
            let secrets = opening
                .open(&row.id, &row.sealed_secrets)
                .with_context(|| format!("opening the secrets of sink {}", row.id))?;
            row.sealed_secrets = sealing
                .seal(&row.id, &secrets)
                .with_context(|| format!("sealing the secrets of sink {}", row.id))?;
            let id = row.id.clone();
            match store.update_sink(row).await {
                Ok(_) => resealed += 1,
                // The data dir is locked, so nothing else writes; a conflict means a bug.
                Err(StoreError::Conflict(m)) => bail!("sink {id} changed during the rotation: {m}"),
                Err(e) => return Err(e).with_context(|| format!("storing the re-sealed secrets of sink {id}")),
            }
        }
        if page.len() < 500 {
            return Ok(resealed);
        }
        after = page.last().map(|r| r.id.clone());
    }
}

/// Rebuilds the database file and empties the WAL, so no page or frame keeps an old ciphertext.
fn compact(db: &Path) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(db).with_context(|| format!("opening {}", db.display()))?;
    conn.execute_batch("VACUUM;")
        .with_context(|| format!("rebuilding {}", db.display()))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .with_context(|| format!("emptying the WAL of {}", db.display()))?;
    Ok(())
}

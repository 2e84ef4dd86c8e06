//! `auditrelay export` and `auditrelay verify` (docs/integrity.md).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use futures::StreamExt;

use crate::chain_check::{parse_public_key, ChainChecker, CheckpointDoc, TenantSummary};
use crate::conn::{http_client, ApiError, ConnectionArgs};

/// An export of any size may take long; only a stalled connection should fail it.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Write a tenant's events (a range, some types) as NDJSON or CSV, streamed.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub conn: ConnectionArgs,
    /// First offset, or an RFC 3339 time (events received at or after it).
    #[arg(long)]
    pub from: Option<String>,
    /// Last offset, or an RFC 3339 time (events received before it).
    #[arg(long)]
    pub to: Option<String>,
    /// Only these type globs, e.g. `decision.*,auth.login`.
    #[arg(long, value_name = "GLOB,...")]
    pub types: Option<String>,
    /// `ndjson` (default) or `csv`.
    #[arg(long, default_value = "ndjson")]
    pub format: String,
    /// Write here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

impl ExportArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        self.conn.validate()?;
        let mut url = self.conn.endpoint("/v1/export")?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("format", &self.format);
            for (k, v) in [("from", &self.from), ("to", &self.to), ("types", &self.types)] {
                if let Some(v) = v {
                    q.append_pair(k, v);
                }
            }
        }
        let mut out: Box<dyn Write> = match &self.output {
            Some(path) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
            )),
            None => Box::new(std::io::BufWriter::new(std::io::stdout())),
        };
        let client = http_client(EXPORT_TIMEOUT).context("building the HTTP client")?;
        let mut body = export_stream(&client, &self.conn, url).await?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.context("reading the export (the server stopped before the end)")?;
            out.write_all(&chunk).context("writing the export")?;
        }
        out.flush().context("writing the export")?;
        Ok(())
    }
}

/// Check hash chains: of an NDJSON file (an export, or what a SIEM received), or of a tenant's
/// live log through the API. Exit status 0 only when every tenant's copy is intact.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// NDJSON of `json`-format events (any tenants, one chain each). Without it, the tenant's
    /// live log is exported through the API and checked.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// The server; needed without --file, and with it to fetch the signed checkpoints.
    #[arg(long, env = "AUDITRELAY_URL")]
    pub url: Option<String>,
    /// Operator token or a tenant key with `read`.
    #[arg(long, env = "AUDITRELAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Tenant (needed with the operator token).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Checkpoints as `GET /v1/integrity/checkpoints` answers them (a file with one such
    /// answer, or NDJSON of checkpoints), to use instead of fetching them.
    #[arg(long)]
    pub checkpoints: Option<PathBuf>,
    /// The checkpoint public key (base64 or PEM, a file path or the value). Pin it: a key
    /// fetched from the server being checked proves less.
    #[arg(long)]
    pub public_key: Option<String>,
}

impl VerifyArgs {
    fn conn(&self) -> Option<ConnectionArgs> {
        Some(ConnectionArgs {
            url: self.url.clone()?,
            token: self.token.clone()?,
            tenant: self.tenant.clone(),
        })
    }

    pub async fn run(self) -> anyhow::Result<()> {
        let conn = self.conn();
        if self.file.is_none() && conn.is_none() {
            bail!("give --file, or --url and --token to check the live log");
        }
        let client = http_client(EXPORT_TIMEOUT).context("building the HTTP client")?;
        let key = match (&self.public_key, &conn) {
            (Some(k), _) => {
                let text = match std::fs::read_to_string(k) {
                    Ok(t) => t,
                    Err(_) => k.clone(),
                };
                Some(parse_public_key(&text).map_err(anyhow::Error::msg)?)
            }
            (None, Some(conn)) => {
                // The public key is not per tenant: no `?tenant=`.
                let mut url = conn.endpoint("/v1/integrity/key")?;
                url.set_query(None);
                let doc: serde_json::Value = get_json(&client, conn, url, "/v1/integrity/key").await?;
                let b64 = doc["public_key"]
                    .as_str()
                    .context("the key answer has no `public_key`")?;
                Some(parse_public_key(b64).map_err(anyhow::Error::msg)?)
            }
            (None, None) => None,
        };
        let checkpoints = match (&self.checkpoints, &conn) {
            (Some(path), _) => read_checkpoints(path)?,
            (None, Some(conn)) => fetch_checkpoints(&client, conn).await?,
            (None, None) => Vec::new(),
        };
        let mut checker = ChainChecker::new(checkpoints, key.as_ref())?;
        match (&self.file, &conn) {
            (Some(path), _) => {
                let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
                let mut csv = false;
                for (i, line) in std::io::BufReader::with_capacity(1 << 20, file).lines().enumerate() {
                    let line = line.with_context(|| format!("reading {}", path.display()))?;
                    if i == 0 && line.trim_end() == crate::export_csv::HEADER {
                        // A CSV export: the event is the last column of each record.
                        csv = true;
                        checker.line("")?;
                    } else if csv && !line.trim().is_empty() {
                        let event = crate::export_csv::event_of(&line)
                            .map_err(|reason| anyhow::anyhow!("line {}: {reason}", i + 1))?;
                        checker.line(&event)?;
                    } else {
                        checker.line(&line)?;
                    }
                }
            }
            (None, Some(conn)) => {
                let mut body = export_stream(&client, conn, conn.endpoint("/v1/export")?).await?;
                let mut pending: Vec<u8> = Vec::new();
                while let Some(chunk) = body.next().await {
                    pending.extend_from_slice(&chunk.context("reading the export")?);
                    let mut start = 0;
                    while let Some(nl) = pending[start..].iter().position(|&b| b == b'\n') {
                        checker.line(&String::from_utf8_lossy(&pending[start..start + nl]))?;
                        start += nl + 1;
                    }
                    pending.drain(..start);
                }
                checker.line(&String::from_utf8_lossy(&pending))?;
            }
            (None, None) => unreachable!("checked above"),
        }
        let summaries = checker.finish();
        if summaries.is_empty() {
            bail!("no events to verify");
        }
        print_summaries(&summaries);
        Ok(())
    }
}

fn print_summaries(summaries: &[TenantSummary]) {
    for s in summaries {
        println!("{s}");
    }
}

/// The body of `GET /v1/export` (`url` carries the query), as a stream of chunks; a non-2xx
/// answer becomes the server's error.
async fn export_stream(
    client: &reqwest::Client,
    conn: &ConnectionArgs,
    url: reqwest::Url,
) -> anyhow::Result<impl futures::Stream<Item = reqwest::Result<bytes::Bytes>>> {
    let resp = client
        .get(url)
        .bearer_auth(conn.bearer()?)
        .send()
        .await
        .context("requesting the export")?;
    if !resp.status().is_success() {
        bail!("{}", ApiError::from_response(resp).await);
    }
    Ok(resp.bytes_stream())
}

/// `GET` of a URL built by `conn.endpoint` (which adds `?tenant=`), with the token, as JSON;
/// a non-2xx answer becomes the server's error. `what` names the request in errors.
async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    conn: &ConnectionArgs,
    url: reqwest::Url,
    what: &str,
) -> anyhow::Result<T> {
    let resp = client
        .get(url)
        .bearer_auth(conn.bearer()?)
        .send()
        .await
        .with_context(|| format!("requesting {what}"))?;
    if !resp.status().is_success() {
        bail!("{what}: {}", ApiError::from_response(resp).await);
    }
    resp.json().await.with_context(|| format!("reading {what}"))
}

async fn fetch_checkpoints(client: &reqwest::Client, conn: &ConnectionArgs) -> anyhow::Result<Vec<CheckpointDoc>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = conn.endpoint("/v1/integrity/checkpoints")?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("limit", "1000");
            if let Some(c) = &cursor {
                q.append_pair("cursor", c);
            }
        }
        let page: CheckpointPage = get_json(client, conn, url, "/v1/integrity/checkpoints").await?;
        out.extend(page.checkpoints);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

#[derive(serde::Deserialize)]
struct CheckpointPage {
    checkpoints: Vec<CheckpointDoc>,
    next_cursor: Option<String>,
}

/// A saved `GET /v1/integrity/checkpoints` answer, or NDJSON of single checkpoints.
fn read_checkpoints(path: &PathBuf) -> anyhow::Result<Vec<CheckpointDoc>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if let Ok(page) = serde_json::from_str::<CheckpointPage>(&text) {
        return Ok(page.checkpoints);
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("a checkpoint in {}", path.display())))
        .collect()
}

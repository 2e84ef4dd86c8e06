//! Output: the human-readable table (ingest, wakeup, delivery, run footer and failures) and the
//! one `BENCH_JSON {…}` line with every figure.

use crate::cli::{Cli, Scenario};
use crate::deliver::{BacklogResult, LatencyResult, ThroughputResult};
use crate::disk::DiskReport;
use crate::events::EventSpec;
use crate::http::Target;
use crate::load;
use crate::runs::{IngestSet, Spread, Subject};
use crate::server::StopOutcome;
use crate::stats::ms;
use crate::wakeup::WakeupResult;

/// Every scenario's result (those that ran) and the failures seen.
#[derive(Default)]
pub struct Report {
    pub ingest1: Option<IngestSet>,
    pub ingest100: Option<IngestSet>,
    /// The data dir after the ingest scenarios.
    pub disk: Option<DiskReport>,
    pub backlog: Option<BacklogResult>,
    pub wakeup: Option<WakeupResult>,
    pub deliver100: Option<ThroughputResult>,
    pub deliver1000: Option<ThroughputResult>,
    pub deliver_latency: Option<LatencyResult>,
    pub many_sinks: Option<crate::many_sinks::ManySinksResult>,
    pub outbox: Vec<crate::outbox::OutboxResult>,
    pub failures: Vec<String>,
}

/// `git` revision of the working directory (`abc1234` or `abc1234-dirty`),
/// so recorded figures say which code they measured.
fn git_revision() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let rev = String::from_utf8(out.stdout).ok()?.trim().to_string();
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .is_some_and(|o| o.status.success() && !o.stdout.is_empty());
    Some(if dirty { format!("{rev}-dirty") } else { rev })
}

/// The `BENCH_JSON {…}` line with every figure.
#[allow(clippy::too_many_arguments)]
pub fn print_json(
    cli: &Cli,
    events: &EventSpec,
    mode: &str,
    target: &Target,
    scenarios: &[Scenario],
    report: &Report,
    footer: Footer<'_>,
    loadavg_end: Option<&str>,
) {
    let Footer {
        peak_rss,
        data_dir_live,
        data_dir_after,
        events_appended,
        bytes_per_event,
        stop,
        loadavg_start,
    } = footer;
    let json = serde_json::json!({
        "server": mode,
        "git": git_revision(),
        "target": target.base(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "client_threads": cli.client_threads,
        "duration_s": cli.duration,
        "warmup_s": cli.warmup,
        "scenarios": scenarios.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "runs": cli.runs,
        "ceilings": !cli.no_ceilings,
        "event_size": cli.event_size.label(),
        "event_bytes": events.typical_len(),
        "client_ids": cli.client_ids,
        "ingest_1": report.ingest1.as_ref().map(IngestSet::to_json),
        "ingest_100": report.ingest100.as_ref().map(IngestSet::to_json),
        "disk": report.disk.as_ref().map(DiskReport::to_json),
        "backlog": report.backlog.as_ref().map(BacklogResult::to_json),
        "wakeup": report.wakeup.as_ref().map(WakeupResult::to_json),
        "deliver_100": report.deliver100.as_ref().map(ThroughputResult::to_json),
        "deliver_1000": report.deliver1000.as_ref().map(ThroughputResult::to_json),
        "deliver_latency": report.deliver_latency.as_ref().map(LatencyResult::to_json),
        "many_sinks": report.many_sinks.as_ref().map(crate::many_sinks::ManySinksResult::to_json),
        "outbox": report.outbox.iter().map(crate::outbox::OutboxResult::to_json).collect::<Vec<_>>(),
        "deliver_in_flight": cli.deliver_in_flight,
        "latency_rate": cli.latency_rate,
        "server_peak_rss_bytes": peak_rss,
        "data_dir_bytes": data_dir_live,
        "data_dir_bytes_after_stop": data_dir_after,
        "events_appended": events_appended,
        "data_dir_bytes_per_event": bytes_per_event.map(load::round1),
        "loadavg_start": loadavg_start,
        "loadavg_end": loadavg_end,
        "sigterm_exit_zero": stop.map(StopOutcome::exited_zero),
        "sigterm_exit": stop.map(StopOutcome::describe),
        "shutdown_ms": stop.map(|s| s.shutdown_time.as_millis() as u64),
        "failures": report.failures,
    });
    println!("BENCH_JSON {json}");
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn opt_pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.0}%", v)).unwrap_or_else(|| "-".into())
}

fn opt_secs(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}s")).unwrap_or_else(|| "TIMEOUT".into())
}

/// The delivery scenarios' tables (nothing when none ran).
fn print_delivery(report: &Report) {
    let rows: Vec<(&str, &ThroughputResult)> = [
        ("deliver-100", report.deliver100.as_ref()),
        ("deliver-1000", report.deliver1000.as_ref()),
    ]
    .into_iter()
    .filter_map(|(n, r)| r.map(|r| (n, r)))
    .collect();
    if !rows.is_empty() {
        println!();
        println!(
            "{:<13} {:>7} {:>11} {:>11} {:>11} {:>9} {:>8} {:>8} {:>7} {:>5} {:>8} {:>8} {:>8}",
            "delivery",
            "in-fl",
            "ingest ev/s",
            "deliv ev/s",
            "during ing",
            "lag@stop",
            "drained",
            "requests",
            "ev/req",
            "dup",
            "missing",
            "srv cpu",
            "+drain"
        );
        for (name, r) in &rows {
            let c = &r.check;
            println!(
                "{:<13} {:>7} {:>11} {:>11} {:>11} {:>9} {:>8} {:>8} {:>7} {:>5} {:>8} {:>8} {:>8}",
                name,
                r.sink.max_in_flight,
                format!("{:.0}", r.ingest.events_per_sec),
                r.delivered_per_sec
                    .map(|v| format!("{v:.0}"))
                    .unwrap_or_else(|| "-".into()),
                format!("{:.0}", r.delivered_during_ingest as f64 / r.ingest.window_secs),
                r.lag_at_ingest_end,
                opt_secs(c.drain_secs),
                c.requests,
                if c.requests > 0 {
                    format!("{:.0}", (c.delivered + c.duplicates) as f64 / c.requests as f64)
                } else {
                    "-".into()
                },
                c.duplicates,
                c.missing(),
                opt_pct(r.ingest.server_cpu_percent),
                opt_pct(r.server_cpu_total_percent),
            );
        }
        for (name, r) in &rows {
            println!(
                "  {name}: events received per 0.5 s from ingest start: {:?}; while ingesting: {} webhook requests, {} server group commits, gap between requests p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; after: p50 {:.2} ms",
                r.timeline,
                r.requests_during_ingest,
                r.commit_groups_during_ingest
                    .map(|g| g.to_string())
                    .unwrap_or_else(|| "?".into()),
                ms(r.gaps_during_ingest.p50),
                ms(r.gaps_during_ingest.p99),
                ms(r.gaps_during_ingest.max),
                ms(r.gaps_after_ingest.p50),
            );
        }
        println!(
            "  (deliv ev/s: distinct events received / first → last receipt; during ing: received while ingest ran / ingest time; \
             lag@stop: events not yet received when ingest stopped; drained: ingest stop → last event received; \
             srv cpu: during ingest, +drain: ingest and drain)"
        );
    }
    if let Some(r) = &report.deliver_latency {
        let l = &r.latency;
        let c = &r.check;
        println!();
        println!(
            "{:<16} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>5} {:>8} {:>8}",
            "latency",
            "events",
            "sent/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "dup",
            "missing",
            "srv cpu"
        );
        println!(
            "{:<16} {:>8} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>5} {:>8} {:>8}",
            "deliver-latency",
            l.count,
            format!("{:.0}", r.sent_per_sec),
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
            c.duplicates,
            c.missing(),
            opt_pct(r.server_cpu_percent),
        );
        println!(
            "  (ingest → receipt of events sent after the warm-up, {} per request every {:.1} ms, target {:.0}/s; \
             POST → 202 p50 {:.2} ms, p99 {:.2} ms; {} late ticks, worst {:.1} ms behind schedule (warm-up: {}, {:.1} ms); {} webhook requests, drained in {})",
            r.events_per_request,
            r.tick.as_secs_f64() * 1000.0,
            r.rate,
            ms(r.post_latency.p50),
            ms(r.post_latency.p99),
            r.late_ticks,
            r.max_behind_schedule.as_secs_f64() * 1000.0,
            r.late_ticks_warmup,
            r.max_behind_schedule_warmup.as_secs_f64() * 1000.0,
            c.requests,
            opt_secs(c.drain_secs),
        );
    }
}

fn spread(s: Spread, decimals: usize) -> String {
    format!("{:.d$} ({:.d$}–{:.d$})", s.median, s.min, s.max, d = decimals)
}

fn opt_spread(s: Option<Spread>, decimals: usize) -> String {
    s.map(|s| spread(s, decimals)).unwrap_or_else(|| "-".into())
}

/// One ingest scenario: auditrelay and the ceilings, medians (min–max) over the runs, and
/// auditrelay's ratio to each ceiling.
fn print_ingest(cli: &Cli, name: &str, set: &IngestSet) {
    println!();
    println!(
        "{name}: {} event(s)/request, {} connections; median (min–max) of {} run(s) of {:.0}s",
        set.batch, cli.connections, cli.runs, cli.duration
    );
    println!(
        "  {:<17} {:>24} {:>20} {:>20} {:>20} {:>26} {:>5} {:>19} {:>7} {:>6}",
        "target",
        "events/s",
        "p50 ms",
        "p99 ms",
        "cpu µs/event",
        "events/cpu-s",
        "cpu",
        "max RSS MiB",
        "cli cpu",
        "errors"
    );
    for who in [Subject::NoopHttp, Subject::Durable, Subject::Auditrelay] {
        let Some(a) = set.agg(who) else {
            continue;
        };
        println!(
            "  {:<17} {:>24} {:>20} {:>20} {:>20} {:>26} {:>5} {:>19} {:>7} {:>6}",
            who.label(),
            spread(a.events_per_s, 0),
            spread(a.p50_ms, 2),
            spread(a.p99_ms, 2),
            opt_spread(a.cpu_us_per_event, 1),
            opt_spread(a.events_per_cpu_s, 0),
            a.cpu_pct
                .map(|c| format!("{:.0}%", c.median))
                .unwrap_or_else(|| "-".into()),
            opt_spread(
                a.max_rss_bytes.map(|s| Spread {
                    median: s.median / 1048576.0,
                    min: s.min / 1048576.0,
                    max: s.max / 1048576.0,
                }),
                1
            ),
            a.client_cpu_pct
                .map(|c| format!("{:.0}%", c.median))
                .unwrap_or_else(|| "-".into()),
            a.errors,
        );
    }
    let ratios: Vec<String> = [
        (Subject::NoopHttp, "do-nothing HTTP ceiling"),
        (Subject::Durable, "durable ceiling"),
    ]
    .into_iter()
    .filter_map(|(who, what)| set.ratio_to(who).map(|r| format!("{r:.2}× {what}")))
    .collect();
    if !ratios.is_empty() {
        println!("  auditrelay: {} (median events/s)", ratios.join(", "));
    }
}

/// What the ingest tables' columns mean (printed once under them).
const INGEST_NOTE: &str = "  (cpu: the target's CPU over the window, % of one core — auditrelay's process, a ceiling's own \
threads in the bench process; cpu µs/event and events/cpu-s from it; max RSS: auditrelay's process sampled every 200 ms \
(the ceilings share the bench's process: not measured); cli cpu: the load generator, without the ceilings' threads. \
A ceiling near 100% cli cpu is bounded by the load generator, not by itself.)";

fn print_disk(d: &DiskReport) {
    println!();
    let per = |v: Option<f64>| v.map(|b| format!("{b:.0}")).unwrap_or_else(|| "-".into());
    println!(
        "bytes on disk per event: {} ({} allocated) — data dir {} ({} allocated, {} files) / {} events stored by the ingest scenarios",
        per(d.apparent_per_event()),
        per(d.allocated_per_event()),
        mib(d.usage.apparent),
        mib(d.usage.allocated),
        d.usage.files,
        d.events
    );
    match (d.canonical, &d.canonical_error) {
        (Some((n, c)), _) => println!(
            "  event as sent: {} bytes; canonical event as read back: {c:.0} bytes (mean of {n}); bytes on disk / canonical: {}",
            d.sent_bytes,
            d.ratio_to_canonical()
                .map(|r| format!("{r:.2}×"))
                .unwrap_or_else(|| "-".into())
        ),
        (None, e) => println!(
            "  event as sent: {} bytes; canonical size unknown ({})",
            d.sent_bytes,
            e.as_deref().unwrap_or("?")
        ),
    }
}

fn print_backlog(b: &BacklogResult) {
    let c = &b.check;
    let rss = |v: Option<u64>| v.map(mib).unwrap_or_else(|| "-".into());
    println!();
    println!(
        "backlog: {} events ingested with the sink paused at {:.0} events/s ({:.1}s); server RSS {} before, max {} while ingesting",
        c.expected,
        b.ingest.events_per_sec,
        b.ingest.window_secs,
        rss(b.rss_before_bytes),
        rss(b.max_rss_ingest_bytes),
    );
    println!(
        "  resumed: drained {} of {} in {} = {} events/s (max RSS {} while draining, srv cpu {}); {} delivered while paused, {} duplicates, {} missing",
        c.delivered,
        c.expected,
        opt_secs(b.drain_secs),
        b.drain_per_sec
            .map(|v| format!("{v:.0}"))
            .unwrap_or_else(|| "-".into()),
        rss(b.max_rss_drain_bytes),
        opt_pct(b.server_cpu_drain_percent),
        b.delivered_while_paused,
        c.duplicates,
        c.missing(),
    );
}

/// Run-wide figures shown under the table and in `BENCH_JSON`.
#[derive(Clone, Copy)]
pub struct Footer<'a> {
    pub peak_rss: Option<u64>,
    pub data_dir_live: Option<u64>,
    pub data_dir_after: Option<u64>,
    pub events_appended: u64,
    pub bytes_per_event: Option<f64>,
    pub stop: Option<&'a StopOutcome>,
    pub loadavg_start: Option<&'a str>,
}

pub fn print_table(cli: &Cli, events: &EventSpec, mode: &str, report: &Report, footer: Footer<'_>) {
    let Footer {
        peak_rss,
        data_dir_live,
        data_dir_after,
        events_appended,
        bytes_per_event,
        stop,
        loadavg_start,
    } = footer;
    println!();
    println!(
        "auditrelay bench — server: {mode}, {} connections, {:.0}s warm-up + {:.0}s per ingest run, {} run(s), events of {} bytes ({}{}), {} client thread(s), {} CPUs",
        cli.connections,
        cli.warmup,
        cli.duration,
        cli.runs,
        events.typical_len(),
        cli.event_size.label(),
        if cli.client_ids { ", client ids" } else { "" },
        cli.client_threads,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    );
    for (name, set) in [("ingest-1", &report.ingest1), ("ingest-100", &report.ingest100)] {
        if let Some(set) = set {
            print_ingest(cli, name, set);
        }
    }
    if report.ingest1.is_some() || report.ingest100.is_some() {
        println!("{INGEST_NOTE}");
    }
    if let Some(d) = &report.disk {
        print_disk(d);
    }
    if let Some(w) = &report.wakeup {
        println!();
        println!(
            "{:<11} {:>9} {:>9} {:>9} {:>7}",
            "scenario", "p50 ms", "p99 ms", "max ms", "errors"
        );
        println!(
            "{:<11} {:>9.2} {:>9.2} {:>9.2} {:>7}",
            "wakeup",
            ms(w.wakeup.p50),
            ms(w.wakeup.p99),
            ms(w.wakeup.max),
            w.errors + w.early_returns,
        );
        println!(
            "  (wakeup: POST sent → long-poll answer received, {} of {} rounds measured; the append's own 202: p50 {:.2} ms, p99 {:.2} ms)",
            w.wakeup.count,
            w.iterations,
            ms(w.append.p50),
            ms(w.append.p99),
        );
    }
    print_delivery(report);
    if let Some(b) = &report.backlog {
        print_backlog(b);
    }
    if let Some(m) = &report.many_sinks {
        m.print();
    }
    for o in &report.outbox {
        o.print();
    }
    println!();
    if let Some(rss) = peak_rss {
        println!("server peak RSS (VmHWM): {}", mib(rss));
    }
    if let Some(d) = data_dir_live {
        println!(
            "data dir: {} before stop, {} after; {} events appended{}",
            mib(d),
            data_dir_after.map(mib).unwrap_or_else(|| "-".into()),
            events_appended,
            bytes_per_event
                .map(|b| format!(" ({b:.0} bytes/event)"))
                .unwrap_or_default()
        );
    }
    if let Some(l) = loadavg_start {
        println!("load average at start: {l} (other work on the machine skews the figures)");
    }
    if let Some(s) = stop {
        println!(
            "SIGTERM: {} after {} ms{}",
            s.describe(),
            s.shutdown_time.as_millis(),
            if s.exited_zero() { "" } else { "  <-- NOT CLEAN" }
        );
    }
    for f in &report.failures {
        println!("FAILURE: {f}");
    }
    println!();
}

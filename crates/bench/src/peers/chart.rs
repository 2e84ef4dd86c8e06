//! The PNG chart of the `peers` scenario: events/s and CPU seconds per million events, one bar
//! per contender, with the machine in the caption. plotters with its bitmap backend and the
//! `ab_glyph` text renderer: no system font library, only a TrueType file read at run time
//! (DejaVu Sans, Debian's `fonts-dejavu-core`, which `scripts/bench peers` installs).

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use serde_json::Value;

use super::{Contender, Summary};

const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

fn register_font() -> Result<()> {
    let path = FONT_PATHS
        .iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| anyhow!("no DejaVuSans.ttf in {FONT_PATHS:?}: apt-get install fonts-dejavu-core"))?;
    let bytes = std::fs::read(path).with_context(|| format!("read {path}"))?;
    // plotters keeps the font for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{path} is not a font ab_glyph can read"))
}

fn short(c: Contender) -> &'static str {
    match c {
        Contender::Auditrelay => "auditrelay",
        Contender::SyslogNgMemory => "syslog-ng mem",
        Contender::SyslogNgDisk => "syslog-ng disk",
        Contender::RsyslogDa => "rsyslog DA",
    }
}

fn colour(c: Contender) -> RGBColor {
    match c {
        Contender::Auditrelay => RGBColor(0x1f, 0x6f, 0xb4),
        Contender::SyslogNgMemory => RGBColor(0xb0, 0xb0, 0xb0),
        Contender::SyslogNgDisk => RGBColor(0x70, 0x70, 0x70),
        Contender::RsyslogDa => RGBColor(0xd0, 0x8c, 0x3c),
    }
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    summaries: &[Summary],
    value: impl Fn(&Summary) -> f64,
    label: impl Fn(f64) -> String,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let n = summaries.len() as u32;
    let top = summaries.iter().map(&value).fold(0.0f64, f64::max).max(1e-9) * 1.18;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        // A discrete range includes its end: n bars are the segments of 0..=n-1.
        .build_cartesian_2d((0..n.saturating_sub(1)).into_segmented(), 0.0..top)
        .map_err(|e| anyhow!("chart: {e}"))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(summaries.len())
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => summaries
                .get(*i as usize)
                .map_or(String::new(), |s| short(s.contender).to_owned()),
            _ => String::new(),
        })
        .y_label_formatter(&|v| label(*v))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(|e| anyhow!("mesh: {e}"))?;
    for (i, s) in summaries.iter().enumerate() {
        let i = i as u32;
        let v = value(s);
        let mut bar = Rectangle::new(
            [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), v)],
            colour(s.contender).filled(),
        );
        bar.set_margin(0, 0, 14, 14);
        chart
            .draw_series(std::iter::once(bar))
            .map_err(|e| anyhow!("bars: {e}"))?;
        chart
            .draw_series(std::iter::once(Text::new(
                label(v),
                (SegmentValue::CenterOf(i), v + top * 0.02),
                ("sans-serif", 15)
                    .into_font()
                    .color(&BLACK)
                    .pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Bottom,
                    )),
            )))
            .map_err(|e| anyhow!("labels: {e}"))?;
    }
    Ok(())
}

pub fn draw(path: &Path, summaries: &[Summary], machine: &Value, runs: usize) -> Result<()> {
    register_font()?;
    let root = BitMapBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("fill: {e}"))?;
    let (head, body) = root.split_vertically(50);
    head.draw_text(
        &format!(
            "loggen RFC 5424 over TCP → forwarder → HEC receiver · {} · {} cores · median of {runs} runs",
            machine["cpu"].as_str().unwrap_or("?"),
            machine["cores"]
        ),
        &("sans-serif", 17).into_font().color(&BLACK),
        (14, 16),
    )
    .map_err(|e| anyhow!("caption: {e}"))?;
    let (left, right) = body.split_horizontally(600);
    panel(
        &left,
        "events per second (higher is better)",
        summaries,
        |s| s.events_per_sec,
        |v| format!("{:.0}k", v / 1000.0),
    )?;
    panel(
        &right,
        "CPU seconds per million events (lower is better)",
        summaries,
        |s| s.cpu_per_million,
        |v| format!("{v:.1}"),
    )?;
    root.present().map_err(|e| anyhow!("write PNG: {e}"))?;
    Ok(())
}

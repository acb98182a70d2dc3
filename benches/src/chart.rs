//! PNG charts of a workload's report, drawn with `plotters`: throughput over time and the
//! latency percentile curve. Text needs a TrueType font: `STRATA_BENCH_FONT`, or DejaVu Sans /
//! Liberation Sans where Debian installs them (`fonts-dejavu-core`).

use std::path::Path;

use plotters::prelude::*;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a font for chart text once; an error names what to install.
pub fn load_font() -> Result<(), BoxError> {
    static LOADED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            let path = std::env::var("STRATA_BENCH_FONT")
                .ok()
                .into_iter()
                .chain(FONT_CANDIDATES.iter().map(|s| s.to_string()))
                .find(|p| Path::new(p).exists())
                .ok_or_else(|| {
                    "no TrueType font for chart text: install fonts-dejavu-core or set STRATA_BENCH_FONT"
                        .to_string()
                })?;
            let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
            // plotters keeps registered fonts for the life of the process.
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes.leak())
                .map_err(|_| format!("{path}: not a usable TrueType font"))
        })
        .clone()
        .map_err(Into::into)
}

/// One line of a chart.
pub struct Line<'a> {
    /// Legend text.
    pub label: &'a str,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// Throughput over time: one line per series, vertical marks at `events` (seconds).
pub fn throughput(
    path: &Path,
    title: &str,
    lines: &[Line<'_>],
    events: &[f64],
) -> Result<(), BoxError> {
    let x_max = max_of(lines, |p| p.0).max(1.0);
    let y_max = max_of(lines, |p| p.1).max(1.0) * 1.1;
    draw(
        path,
        title,
        "seconds",
        "MB/s",
        lines,
        (0.0..x_max, 0.0..y_max),
        events,
        None,
    )
}

/// Latency against percentile; x is the number of nines (`-log10(1 - q)`), labelled as
/// percentiles, so the tail gets as much room as the median.
pub fn latency_curve(path: &Path, title: &str, lines: &[Line<'_>]) -> Result<(), BoxError> {
    let x_max = max_of(lines, |p| p.0).max(1.0);
    let y_max = max_of(lines, |p| p.1).max(0.01) * 1.1;
    let label = |x: &f64| {
        let q = 100.0 * (1.0 - 10f64.powf(-*x));
        let s = format!("{q:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    draw(
        path,
        title,
        "percentile",
        "latency (ms)",
        lines,
        (0.0..x_max, 0.0..y_max),
        &[],
        Some(&label),
    )
}

fn max_of(lines: &[Line<'_>], f: impl Fn(&(f64, f64)) -> f64) -> f64 {
    lines
        .iter()
        .flat_map(|l| l.points.iter())
        .map(f)
        .fold(0.0, f64::max)
}

#[allow(clippy::too_many_arguments)]
fn draw(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line<'_>],
    range: (std::ops::Range<f64>, std::ops::Range<f64>),
    events: &[f64],
    x_label: Option<&dyn Fn(&f64) -> String>,
) -> Result<(), BoxError> {
    load_font()?;
    let root = BitMapBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let y_top = range.1.end;
    let range_end_labels = range.0.end.round() as usize;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(range.0, range.1)
        .map_err(|e| e.to_string())?;
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_desc).y_desc(y_desc);
    if let Some(f) = x_label {
        // One label per nine: 0, 90, 99, 99.9, ...
        mesh.x_labels(range_end_labels + 1).x_label_formatter(f);
    }
    mesh.draw().map_err(|e| e.to_string())?;
    for (i, line) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(line.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    for &t in events {
        chart
            .draw_series(LineSeries::new(vec![(t, 0.0), (t, y_top)], BLACK.mix(0.4)))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

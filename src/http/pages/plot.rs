//! The pages' plots: `plotters` drawing into SVG text (no raster, no system fonts; labels
//! are `<text>` elements the browser renders). A history plot draws each segment of a
//! [`History`] as its own line, so gaps stay gaps, and limits as horizontal lines in
//! [`LIMIT_COLOR`], marks (an incident's start) as vertical ones in [`MARK_COLOR`].

use plotters::prelude::*;

use super::series::History;
use crate::base::time::format_rfc3339_ms;

/// The data line's colour.
const DATA_COLOR: RGBColor = RGBColor(31, 119, 180);
/// Rule limits and thresholds; the browser test finds limit lines by this colour.
pub const LIMIT_COLOR: RGBColor = RGBColor(200, 30, 30);
/// Vertical marks.
const MARK_COLOR: RGBColor = RGBColor(255, 140, 0);

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("plot: {0}")]
    Draw(String),
}

fn draw_err<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError::Draw(format!("{e:?}"))
}

/// What a history plot shows.
pub struct Plot<'a> {
    pub from_ms: i64,
    pub to_ms: i64,
    pub history: &'a History,
    /// Horizontal lines: label and value.
    pub limits: Vec<(String, f64)>,
    /// Vertical lines: label and time.
    pub marks: Vec<(String, i64)>,
    pub size: (u32, u32),
}

/// The value axis: the data and the limits, padded so that neither sits on the frame.
fn value_axis(p: &Plot) -> (f64, f64) {
    let limits = p.limits.iter().map(|l| l.1);
    let (lo, hi) = match p.history.value_span() {
        Some((lo, hi)) => limits.fold((lo, hi), |(a, b), v| (a.min(v), b.max(v))),
        None => limits.fold((0.0f64, 1.0f64), |(a, b), v| (a.min(v), b.max(v))),
    };
    let pad = ((hi - lo) * 0.08).max(hi.abs().max(1.0) * 1e-3);
    (lo - pad, hi + pad)
}

/// Time labels: clock time for windows up to two days, the date beyond.
fn time_label(ts_ms: i64, span_ms: i64) -> String {
    let t = format_rfc3339_ms(ts_ms);
    match span_ms {
        s if s <= 3_600_000 => t.get(11..19).unwrap_or(&t).to_string(),
        s if s <= 2 * 86_400_000 => t.get(11..16).unwrap_or(&t).to_string(),
        _ => t.get(..10).unwrap_or(&t).to_string(),
    }
}

/// A sensor's history with its limits and marks, as an `<svg>` element.
pub fn history_svg(p: &Plot) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, p.size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let (lo, hi) = value_axis(p);
        let span = (p.to_ms - p.from_ms).max(1);
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(p.from_ms..p.to_ms.max(p.from_ms + 1), lo..hi)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_labels(7)
            .y_labels(6)
            .x_label_formatter(&|x: &i64| time_label(*x, span))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(draw_err)?;
        for seg in &p.history.segments {
            chart
                .draw_series(LineSeries::new(seg.iter().copied(), DATA_COLOR.stroke_width(2)))
                .map_err(draw_err)?;
        }
        for (label, v) in &p.limits {
            chart
                .draw_series(LineSeries::new(
                    [(p.from_ms, *v), (p.to_ms, *v)],
                    LIMIT_COLOR.stroke_width(2),
                ))
                .map_err(draw_err)?
                .label(label.as_str())
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], LIMIT_COLOR.stroke_width(2)));
        }
        for (label, t) in &p.marks {
            chart
                .draw_series(LineSeries::new([(*t, lo), (*t, hi)], MARK_COLOR.stroke_width(2)))
                .map_err(draw_err)?
                .label(label.as_str())
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], MARK_COLOR.stroke_width(2)));
        }
        if !p.limits.is_empty() || !p.marks.is_empty() {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// A small line of the history without axes, for tables.
pub fn sparkline_svg(history: &History, from_ms: i64, to_ms: i64) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (160, 32)).into_drawing_area();
        let (lo, hi) = history.value_span().unwrap_or((0.0, 1.0));
        let pad = ((hi - lo) * 0.1).max(1e-6);
        let mut chart = ChartBuilder::on(&root)
            .margin(2)
            .build_cartesian_2d(from_ms..to_ms.max(from_ms + 1), (lo - pad)..(hi + pad))
            .map_err(draw_err)?;
        for seg in &history.segments {
            chart
                .draw_series(LineSeries::new(seg.iter().copied(), DATA_COLOR))
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// The plot, or a note saying why there is none (a page still shows the rest).
pub fn or_note(plot: Result<String, PlotError>) -> String {
    plot.unwrap_or_else(|e| format!("<p class=\"bad\">{}</p>", super::html::esc(&e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_segments_become_polylines() {
        let h = History {
            segments: vec![vec![(0, 1.0), (10, 2.0)], vec![(30, 3.0), (40, 2.5)]],
            ..History::default()
        };
        let p = Plot {
            from_ms: 0,
            to_ms: 60,
            history: &h,
            limits: vec![("hot above 2.8".into(), 2.8)],
            marks: Vec::new(),
            size: (400, 200),
        };
        let svg = history_svg(&p).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.matches("<polyline").count() >= 3, "{svg}");
        assert!(svg.contains("#C81E1E"), "limit colour in {svg}");
        assert!(svg.contains("hot above 2.8"));
        assert!(sparkline_svg(&h, 0, 60).unwrap().contains("<polyline"));
    }
}

//! Bar charts as inline SVG, drawn here so the report needs no script, font or stylesheet from
//! anywhere: one group of bars per day, one bar per series, a tooltip (`<title>`) on each bar.

use std::fmt::Write;

use time::Date;

/// One series of a chart: its name and colour.
pub struct Series {
    pub name: &'static str,
    pub colour: &'static str,
}

const HEIGHT: f64 = 180.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 40.0;
/// The plot stays about this wide whatever the number of days.
const PLOT_WIDTH: f64 = 960.0;
/// Wide enough for the legend even when a chart has a single day.
const MIN_WIDTH: f64 = 480.0;

/// Escapes text for HTML and SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// The smallest of 1, 2, 5 × 10ⁿ at or above `value`: a round top for the axis.
fn round_up(value: u64) -> u64 {
    let mut step = 1;
    loop {
        for factor in [1, 2, 5] {
            if step * factor >= value {
                return step * factor;
            }
        }
        step = step.saturating_mul(10);
    }
}

/// A grouped bar chart of `rows` (a day and one value per series).
pub fn bars(label: &str, series: &[Series], rows: &[(Date, Vec<u64>)]) -> String {
    let days = rows.len().max(1) as f64;
    let group = (PLOT_WIDTH / days).clamp(3.0, 48.0);
    let bar = ((group - 2.0) / series.len().max(1) as f64).max(1.0);
    let top = round_up(
        rows.iter()
            .flat_map(|(_, v)| v.iter().copied())
            .max()
            .unwrap_or(0)
            .max(1),
    );
    // Room for the longest axis label.
    let left = 14.0 + 7.0 * top.to_string().len() as f64;
    let width = (left + group * days + 8.0).max(MIN_WIDTH);
    let scale = HEIGHT / top as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"{}\" \
         width=\"{width:.0}\" height=\"{:.0}\" viewBox=\"0 0 {width:.0} {:.0}\">",
        escape(label),
        TOP + HEIGHT + BOTTOM,
        TOP + HEIGHT + BOTTOM
    );
    let base = TOP + HEIGHT;
    // A middle line only where it falls on a whole number.
    let middle = top
        .is_multiple_of(2)
        .then_some((top / 2, base - HEIGHT / 2.0));
    for (value, y) in [Some((0, base)), middle, Some((top, TOP))]
        .into_iter()
        .flatten()
    {
        let _ = write!(
            svg,
            "<line x1=\"{left:.0}\" y1=\"{y:.1}\" x2=\"{width:.0}\" y2=\"{y:.1}\" class=\"grid\"/>\
             <text x=\"{:.0}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{value}</text>",
            left - 6.0,
            y + 4.0
        );
    }
    // Day labels at least 64 px apart.
    let every = (64.0 / group).ceil().max(1.0) as usize;
    for (index, (day, values)) in rows.iter().enumerate() {
        let x = left + group * index as f64 + 1.0;
        for (offset, (value, series)) in values.iter().zip(series).enumerate() {
            let height = *value as f64 * scale;
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{height:.1}\" \
                 fill=\"{}\"><title>{day}: {value} {}</title></rect>",
                x + bar * offset as f64,
                base - height,
                series.colour,
                escape(series.name)
            );
        }
        if index % every == 0 {
            let _ = write!(
                svg,
                "<text x=\"{x:.1}\" y=\"{:.1}\" class=\"axis\">{:02}-{:02}</text>",
                base + 14.0,
                u8::from(day.month()),
                day.day()
            );
        }
    }
    let mut x = left;
    for series in series {
        let _ = write!(
            svg,
            "<rect x=\"{x:.0}\" y=\"{:.0}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\" class=\"axis\">{}</text>",
            base + 24.0,
            series.colour,
            x + 14.0,
            base + 33.0,
            escape(series.name)
        );
        x += 14.0 + 8.0 * series.name.len() as f64 + 16.0;
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers_and_text_is_escaped() {
        assert_eq!(round_up(1), 1);
        assert_eq!(round_up(3), 5);
        assert_eq!(round_up(11), 20);
        assert_eq!(round_up(501), 1000);
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn every_day_gets_a_bar_per_series_with_its_value() {
        let day = Date::from_calendar_date(2024, time::Month::May, 1).unwrap();
        let series = [
            Series {
                name: "sign-ins",
                colour: "#2b6cb0",
            },
            Series {
                name: "failures",
                colour: "#c53030",
            },
        ];
        let svg = bars("chart", &series, &[(day, vec![3, 1])]);
        assert!(svg.starts_with("<svg"));
        assert_eq!(
            svg.matches("<rect").count(),
            4,
            "two bars and two legend keys"
        );
        assert!(svg.contains("<title>2024-05-01: 3 sign-ins</title>"));
        assert!(!svg.contains("<script"));
    }
}

//! Inline SVG bar charts for the HTML daily report: no scripts, no external
//! assets, readable when printed or opened offline.

use std::fmt::Write as _;

/// Escapes text for HTML/SVG content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One series of values, one per label.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: String,
    pub values: Vec<f64>,
}

impl Series {
    pub fn new(name: &str, color: &str, values: Vec<f64>) -> Series {
        Series {
            name: name.into(),
            color: color.into(),
            values,
        }
    }
}

/// A round axis maximum at or above `v` (1, 2, 5 × 10^n).
fn nice_max(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|m| *m >= v)
        .unwrap_or(10.0 * p)
}

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

const W: f64 = 720.0;
const H: f64 = 240.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 36.0;

/// Vertical bars per label: stacked (one bar per label) or grouped (one per series).
pub fn bar_chart(title: &str, labels: &[String], series: &[Series], stacked: bool) -> String {
    let n = labels.len().max(1) as f64;
    let value = |s: &Series, i: usize| {
        s.values
            .get(i)
            .copied()
            .filter(|v| v.is_finite() && *v > 0.0)
            .unwrap_or(0.0)
    };
    let top = (0..labels.len())
        .map(|i| {
            if stacked {
                series.iter().map(|s| value(s, i)).sum::<f64>()
            } else {
                series.iter().map(|s| value(s, i)).fold(0.0, f64::max)
            }
        })
        .fold(0.0, f64::max);
    let max = nice_max(top);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let y = |v: f64| TOP + ph - v / max * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><text x="{LEFT}" y="16" class="ct">{t}</text>"#,
        t = escape(title)
    );
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end" class="ax">{v}</text>"##,
            x2 = W - RIGHT,
            yy = y(v),
            tx = LEFT - 4.0,
            ty = y(v) + 4.0,
            v = fmt_num(v)
        );
    }
    let slot = pw / n;
    let every = (labels.len() / 24).max(1);
    for (i, label) in labels.iter().enumerate() {
        let x0 = LEFT + slot * i as f64;
        if stacked {
            let mut base = 0.0;
            for sr in series {
                let v = value(sr, i);
                if v > 0.0 {
                    let _ = write!(
                        s,
                        r#"<rect x="{x:.1}" y="{yy:.1}" width="{w:.1}" height="{h:.1}" fill="{c}"><title>{l}: {v} {name}</title></rect>"#,
                        x = x0 + slot * 0.15,
                        yy = y(base + v),
                        w = slot * 0.7,
                        h = v / max * ph,
                        c = escape(&sr.color),
                        l = escape(label),
                        v = fmt_num(v),
                        name = escape(&sr.name)
                    );
                }
                base += v;
            }
        } else {
            let bw = slot * 0.8 / series.len().max(1) as f64;
            for (k, sr) in series.iter().enumerate() {
                let v = value(sr, i);
                let _ = write!(
                    s,
                    r#"<rect x="{x:.1}" y="{yy:.1}" width="{w:.1}" height="{h:.1}" fill="{c}"><title>{l}: {v} {name}</title></rect>"#,
                    x = x0 + slot * 0.1 + bw * k as f64,
                    yy = y(v),
                    w = bw,
                    h = v / max * ph,
                    c = escape(&sr.color),
                    l = escape(label),
                    v = fmt_num(v),
                    name = escape(&sr.name)
                );
            }
        }
        if i % every == 0 {
            let _ = write!(
                s,
                r#"<text x="{x:.1}" y="{ty}" text-anchor="middle" class="ax">{l}</text>"#,
                x = x0 + slot / 2.0,
                ty = H - BOTTOM + 14.0,
                l = escape(label)
            );
        }
    }
    let mut lx = LEFT;
    for sr in series {
        let _ = write!(
            s,
            r#"<rect x="{lx:.1}" y="{ly}" width="10" height="10" fill="{c}"/><text x="{tx:.1}" y="{ty}" class="ax">{name}</text>"#,
            ly = H - 14.0,
            c = escape(&sr.color),
            tx = lx + 14.0,
            ty = H - 5.0,
            name = escape(&sr.name)
        );
        lx += 24.0 + 7.0 * sr.name.chars().count() as f64;
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars, one per item (top-N lists), with the value at the end.
pub fn hbar_chart(title: &str, items: &[(String, f64)], color: &str) -> String {
    let row = 22.0;
    let h = TOP + row * items.len().max(1) as f64 + 8.0;
    let label_w = 120.0;
    let max = nice_max(items.iter().map(|(_, v)| *v).fold(0.0, f64::max));
    let pw = W - label_w - 60.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {h}" width="100%" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><text x="4" y="16" class="ct">{t}</text>"#,
        t = escape(title)
    );
    if items.is_empty() {
        let _ = write!(
            s,
            r#"<text x="4" y="{}" class="ax">no data</text>"#,
            TOP + 14.0
        );
    }
    for (i, (label, v)) in items.iter().enumerate() {
        let yy = TOP + row * i as f64;
        let w = if v.is_finite() && *v > 0.0 {
            v / max * pw
        } else {
            0.0
        };
        let _ = write!(
            s,
            r#"<text x="{lx}" y="{ty:.1}" text-anchor="end" class="ax">{l}</text><rect x="{label_w}" y="{yy:.1}" width="{w:.1}" height="{bh}" fill="{c}"><title>{l}: {vv}</title></rect><text x="{vx:.1}" y="{ty:.1}" class="ax">{vv}</text>"#,
            lx = label_w - 6.0,
            ty = yy + 14.0,
            l = escape(label),
            bh = row - 6.0,
            c = escape(color),
            vx = label_w + w + 4.0,
            vv = fmt_num(*v)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_handles_markup() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn nice_max_rounds_up() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(13.0), 20.0);
        assert_eq!(nice_max(420.0), 500.0);
    }

    #[test]
    fn bar_chart_is_one_svg_with_a_rect_per_value() {
        let labels: Vec<String> = (0..3).map(|h| h.to_string()).collect();
        let svg = bar_chart(
            "t<",
            &labels,
            &[Series::new("a", "#f00", vec![1.0, 0.0, 2.0])],
            true,
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(
            svg.matches("<rect").count(),
            2 + 1,
            "two bars and one legend box"
        );
        assert!(svg.contains("t&lt;"));
    }

    #[test]
    fn hbar_chart_survives_nan_and_empty() {
        assert!(hbar_chart("x", &[], "#000").contains("no data"));
        assert!(hbar_chart("x", &[("a".into(), f64::NAN)], "#000").contains("<rect"));
    }
}

//! Inline SVG charts for the report, drawn with plotters' SVG backend. Text
//! in them is plain SVG `<text>`, so the page needs no font files.

use plotters::prelude::*;

/// A bar chart of labelled counts (a histogram of scores, a distribution).
/// `title` becomes the chart's accessible name.
pub fn bars(title: &str, bars: &[(String, u64)], colour: (u8, u8, u8)) -> String {
    let mut svg = String::new();
    let (w, h) = (560u32, 220u32);
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let n = bars.len().max(1) as u32;
        let top = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
        let (left, right, up, down) = (36i32, 8i32, 18i32, 28i32);
        let plot_w = w as i32 - left - right;
        let plot_h = h as i32 - up - down;
        let slot = plot_w / n as i32;
        let fill = RGBColor(colour.0, colour.1, colour.2);
        let axis = RGBColor(120, 120, 120);
        let label = TextStyle::from(("sans-serif", 14).into_font()).color(&BLACK);
        let _ = root.draw(&PathElement::new(
            vec![(left, up + plot_h), (left + plot_w, up + plot_h)],
            axis,
        ));
        let _ = root.draw(&Text::new(format!("{top}"), (2, up - 4), label.clone()));
        for (i, (name, count)) in bars.iter().enumerate() {
            let x0 = left + i as i32 * slot + 2;
            let x1 = x0 + (slot - 4).max(1);
            let bar_h = (*count as f64 / top as f64 * plot_h as f64).round() as i32;
            let y0 = up + plot_h - bar_h;
            let _ = root.draw(&Rectangle::new(
                [(x0, y0), (x1, up + plot_h)],
                fill.filled(),
            ));
            if *count > 0 {
                let _ = root.draw(&Text::new(format!("{count}"), (x0, y0 - 13), label.clone()));
            }
            let _ = root.draw(&Text::new(
                name.clone(),
                (x0, up + plot_h + 6),
                label.clone(),
            ));
        }
        let _ = root.present();
    }
    accessible(svg, title)
}

/// A small line of daily counts (a theme's trend), no axes.
pub fn sparkline(title: &str, values: &[u64]) -> String {
    let mut svg = String::new();
    let (w, h) = (120u32, 28u32);
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        let top = values.iter().copied().max().unwrap_or(0).max(1) as f64;
        let n = values.len().max(2) as f64 - 1.0;
        let pts: Vec<(i32, i32)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    2 + (i as f64 / n * (w as f64 - 4.0)).round() as i32,
                    (h as f64 - 2.0 - *v as f64 / top * (h as f64 - 4.0)).round() as i32,
                )
            })
            .collect();
        let _ = root.draw(&PathElement::new(
            pts,
            RGBColor(37, 99, 235).stroke_width(2),
        ));
        let _ = root.present();
    }
    accessible(svg, title)
}

/// A line of daily shares in percent with its peak labelled (a trend).
pub fn trend(title: &str, days: &[(String, f64)]) -> String {
    let mut svg = String::new();
    let (w, h) = (560u32, 160u32);
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let top = days.iter().map(|d| d.1).fold(0.0f64, f64::max).max(1.0);
        let (left, up, down) = (40i32, 16i32, 24i32);
        let plot_w = w as i32 - left - 10;
        let plot_h = h as i32 - up - down;
        let n = days.len().max(2) as f64 - 1.0;
        let label = TextStyle::from(("sans-serif", 14).into_font()).color(&BLACK);
        let pts: Vec<(i32, i32)> = days
            .iter()
            .enumerate()
            .map(|(i, (_, v))| {
                (
                    left + (i as f64 / n * plot_w as f64).round() as i32,
                    up + plot_h - (v / top * plot_h as f64).round() as i32,
                )
            })
            .collect();
        let _ = root.draw(&PathElement::new(
            vec![(left, up + plot_h), (left + plot_w, up + plot_h)],
            RGBColor(120, 120, 120),
        ));
        let _ = root.draw(&Text::new(format!("{top:.1}%"), (2, up - 4), label.clone()));
        for p in &pts {
            let _ = root.draw(&Circle::new(*p, 2, RGBColor(220, 38, 38).filled()));
        }
        let _ = root.draw(&PathElement::new(
            pts,
            RGBColor(220, 38, 38).stroke_width(2),
        ));
        if let (Some(first), Some(last)) = (days.first(), days.last()) {
            let _ = root.draw(&Text::new(
                first.0.clone(),
                (left, up + plot_h + 6),
                label.clone(),
            ));
            let _ = root.draw(&Text::new(
                last.0.clone(),
                (left + plot_w - 64, up + plot_h + 6),
                label,
            ));
        }
        let _ = root.present();
    }
    accessible(svg, title)
}

/// Gives the SVG a role and a `<title>` for screen readers, and lets it
/// shrink to the page width (phones).
fn accessible(svg: String, title: &str) -> String {
    let title = super::render::escape(title);
    svg.replacen(
        "<svg ",
        &format!("<svg role=\"img\" aria-label=\"{title}\" style=\"max-width:100%;height:auto\" "),
        1,
    )
    .replacen('>', &format!("><title>{title}</title>"), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_labels_and_no_external_references() {
        let b = bars(
            "Scores",
            &[("0".into(), 3), ("10".into(), 9)],
            (37, 99, 235),
        );
        assert!(b.starts_with("<svg role=\"img\""), "{b}");
        assert!(b.contains("<title>Scores</title>"));
        assert!(
            b.contains("\n10\n</text>") && b.contains("\n9\n</text>"),
            "{b}"
        );
        assert_eq!(b.matches("<rect").count(), 3, "background + 2 bars: {b}");
        let s = sparkline("t", &[1, 4, 2]);
        assert!(s.contains("<polyline"), "{s}");
        let t = trend(
            "fatigue",
            &[("2026-10-01".into(), 2.0), ("2026-10-02".into(), 5.0)],
        );
        assert!(t.contains("2026-10-02") && t.contains("5.0%"), "{t}");
        for svg in [b, s, t] {
            assert!(!svg.contains("href"), "{svg}");
        }
    }
}

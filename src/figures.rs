//! The page's figures as standalone SVG text: NIAH heat maps, pooled
//! attention maps, their log-ratio, and per-head bars. The same text is
//! shown in the page and exported with a report, so a figure looks the same
//! wherever it is opened. Colour scales are colour-blind safe: viridis for
//! magnitudes, blue-white-orange for signed values, Okabe-Ito for models.

use std::fmt::Write;

use crate::prompts::TaskKind;
use crate::sweep::CellResult;

/// Viridis at nine evenly spaced stops.
const VIRIDIS: [[u8; 3]; 9] = [
    [68, 1, 84],
    [71, 44, 122],
    [59, 81, 139],
    [44, 113, 142],
    [33, 144, 141],
    [39, 173, 129],
    [92, 200, 99],
    [170, 220, 50],
    [253, 231, 37],
];

/// Okabe-Ito colours for up to three models (pre, sft, merged).
pub const MODEL_COLOURS: [&str; 3] = ["#0072B2", "#E69F00", "#009E73"];

/// Text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn hex([r, g, b]: [u8; 3]) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

fn lerp(a: [u8; 3], b: [u8; 3], t: f64) -> [u8; 3] {
    std::array::from_fn(|i| (a[i] as f64 + (b[i] as f64 - a[i] as f64) * t).round() as u8)
}

/// Viridis at `x` in [0, 1] (clamped; NaN is the lowest colour).
pub fn viridis(x: f64) -> String {
    let x = if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
    let f = x * (VIRIDIS.len() - 1) as f64;
    let i = (f.floor() as usize).min(VIRIDIS.len() - 2);
    hex(lerp(VIRIDIS[i], VIRIDIS[i + 1], f - i as f64))
}

/// Blue (-1) through white (0) to orange (+1), clamped.
pub fn diverging(x: f64) -> String {
    let x = if x.is_nan() { 0.0 } else { x.clamp(-1.0, 1.0) };
    let white = [247, 247, 247];
    if x < 0.0 {
        hex(lerp(white, [33, 102, 172], -x))
    } else {
        hex(lerp(white, [230, 97, 1], x))
    }
}

/// Light (0) to dark (1) blue, clamped: the drift table's scale.
pub fn blues(x: f64) -> String {
    let x = if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
    hex(lerp([239, 243, 255], [8, 48, 107], x))
}

/// WCAG relative luminance of a `#rrggbb` colour.
fn luminance(colour: &str) -> f64 {
    let v = u32::from_str_radix(colour.trim_start_matches('#'), 16).unwrap_or(0);
    let linear = |c: u32| {
        let c = c as f64 / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * linear(v >> 16) + 0.7152 * linear((v >> 8) & 255) + 0.0722 * linear(v & 255)
}

/// Black or white, whichever contrasts more with `background` (`#rrggbb`):
/// on any colour one of them reaches WCAG's 4.5:1.
pub fn ink_on(background: &str) -> &'static str {
    let l = luminance(background);
    if (l + 0.05) / 0.05 >= 1.05 / (l + 0.05) {
        "#000"
    } else {
        "#fff"
    }
}

/// Black or white, whichever reads on viridis at `x`.
fn ink(x: f64) -> &'static str {
    ink_on(&viridis(x))
}

fn svg_open(out: &mut String, w: f64, h: f64, title: &str) {
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12" role="img"><title>{t}</title><rect width="{w}" height="{h}" fill="#fff"/>"##,
        t = escape(title)
    );
}

/// One model's NIAH accuracy as context length (columns) x needle depth
/// (rows), on the shared scale 0-100 %; each cell says its number and,
/// on hover, its full coordinates.
pub fn niah_heat_map(
    model: &str,
    task: TaskKind,
    lengths: &[u32],
    depths: &[f64],
    cells: &[CellResult],
) -> String {
    let (cell_w, cell_h, left, top) = (64.0, 28.0, 56.0, 40.0);
    let plot_w = cell_w * lengths.len() as f64;
    // Room for the axis title and the legend's labels however few the columns.
    let w = left + plot_w.max(150.0) + 40.0;
    let h = top + cell_h * depths.len() as f64 + 56.0;
    let mut s = String::new();
    svg_open(&mut s, w, h, &format!("NIAH {task}: {model}"));
    let task_name = escape(task.name());
    let _ = write!(
        s,
        r##"<text x="{left}" y="16" font-weight="bold">{}</text>"##,
        escape(model)
    );
    let _ = write!(
        s,
        r##"<text x="{left}" y="32" fill="#555">{task_name} accuracy, %</text>"##
    );
    for (j, len) in lengths.iter().enumerate() {
        let x = left + cell_w * (j as f64 + 0.5);
        let _ = write!(
            s,
            r##"<text x="{x}" y="{}" text-anchor="middle">{len}</text>"##,
            top + cell_h * depths.len() as f64 + 16.0
        );
    }
    let _ = write!(
        s,
        r##"<text x="{left}" y="{}" fill="#555">context length (tokens)</text>"##,
        h - 22.0
    );
    for (i, d) in depths.iter().enumerate() {
        let y = top + cell_h * (i as f64 + 0.5) + 4.0;
        let _ = write!(
            s,
            r##"<text x="{}" y="{y}" text-anchor="end">{d}</text>"##,
            left - 6.0
        );
        for (j, len) in lengths.iter().enumerate() {
            let cell = cells
                .iter()
                .find(|c| c.model == model && c.task == task && c.length == *len && c.depth == *d);
            let (x0, y0) = (left + cell_w * j as f64, top + cell_h * i as f64);
            match cell {
                Some(c) => {
                    let pct = (c.accuracy * 100.0).round();
                    let _ = write!(
                        s,
                        r##"<g class="cell" data-length="{len}" data-depth="{d}" data-accuracy="{a}"><title>{m}, {task} at {len} tokens, depth {d}: {pct}% of {n} sample(s)</title><rect x="{x0}" y="{y0}" width="{cell_w}" height="{cell_h}" fill="{fill}" stroke="#fff"/><text x="{tx}" y="{ty}" text-anchor="middle" fill="{ink}">{pct}</text></g>"##,
                        a = c.accuracy,
                        m = escape(model),
                        task = task_name,
                        n = c.samples,
                        fill = viridis(c.accuracy),
                        tx = x0 + cell_w / 2.0,
                        ty = y0 + cell_h / 2.0 + 4.0,
                        ink = ink(c.accuracy),
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        r##"<rect x="{x0}" y="{y0}" width="{cell_w}" height="{cell_h}" fill="#eee" stroke="#fff"><title>not run</title></rect>"##
                    );
                }
            }
        }
    }
    let _ = write!(
        s,
        r##"<text x="12" y="{}" transform="rotate(-90 12 {0})" text-anchor="middle" fill="#555">depth</text>"##,
        top + cell_h * depths.len() as f64 / 2.0
    );
    legend(
        &mut s,
        left,
        h - 14.0,
        plot_w.max(120.0),
        "0",
        "100 %",
        viridis,
    );
    s.push_str("</svg>");
    s
}

/// A thin colour bar from `lo` to `hi` at (x, y).
fn legend(s: &mut String, x: f64, y: f64, w: f64, lo: &str, hi: &str, scale: fn(f64) -> String) {
    let steps = 24;
    for k in 0..steps {
        let t = k as f64 / (steps - 1) as f64;
        let _ = write!(
            s,
            r##"<rect x="{}" y="{y}" width="{}" height="6" fill="{}"/>"##,
            x + w * k as f64 / steps as f64,
            w / steps as f64 + 0.5,
            scale(t)
        );
    }
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" text-anchor="end" font-size="10">{}</text>"##,
        x - 4.0,
        y + 6.0,
        escape(lo)
    );
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" font-size="10">{}</text>"##,
        x + w + 4.0,
        y + 6.0,
        escape(hi)
    );
}

/// Where the needle sits in a pooled map: its keys' blocks, drawn as a
/// band over those columns.
#[derive(Debug, Clone, Copy)]
pub struct NeedleBlocks {
    pub first: usize,
    pub last: usize,
}

/// What an attention map's cells hold.
#[derive(Debug, Clone, Copy)]
pub enum MapValues<'a> {
    /// Mean attention per block.
    Attention,
    /// ln(`more` / `than`) per block: orange where `more` attends more.
    LogRatio { more: &'a str, than: &'a str },
}

/// A `[blocks, blocks]` block-pooled attention map (queries down, keys
/// across), in log scale over four decades below its largest cell, or a
/// log-ratio map on a symmetric diverging scale. A sliding-window layer's
/// `window` (tokens) is drawn as the edge of what its queries reach.
pub fn attention_map(
    title: &str,
    map: &[f32],
    (blocks, block): (usize, usize),
    needle: Option<NeedleBlocks>,
    window: Option<u64>,
    values: MapValues,
) -> String {
    let signed = matches!(values, MapValues::LogRatio { .. });
    let size = 256.0;
    let cell = size / blocks.max(1) as f64;
    let (left, top) = (8.0, 28.0);
    let mut s = String::new();
    svg_open(&mut s, left + size + 8.0, top + size + 52.0, title);
    let _ = write!(
        s,
        r##"<text x="{left}" y="18" font-weight="bold">{}</text>"##,
        escape(title)
    );
    let max = map
        .iter()
        .fold(
            0.0f32,
            |m, v| if signed { m.max(v.abs()) } else { m.max(*v) },
        )
        .max(1e-30) as f64;
    let colour = |v: f64| -> String {
        if signed {
            diverging(v / max)
        } else if v <= 0.0 {
            viridis(0.0)
        } else {
            viridis(1.0 + (v / max).log10() / 4.0)
        }
    };
    for i in 0..blocks {
        for j in 0..blocks {
            let v = map[i * blocks + j] as f64;
            let _ = write!(
                s,
                r##"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="{}"><title>queries {}-{}, keys {}-{}: {v:.3e}</title></rect>"##,
                left + cell * j as f64,
                top + cell * i as f64,
                cell + 0.05,
                cell + 0.05,
                colour(v),
                i * block,
                (i + 1) * block - 1,
                j * block,
                (j + 1) * block - 1,
            );
        }
    }
    if let Some(n) = needle {
        let x = left + cell * n.first as f64;
        let w = cell * (n.last + 1 - n.first) as f64;
        let _ = write!(
            s,
            r##"<rect class="needle" x="{x:.2}" y="{top}" width="{w:.2}" height="{size}" fill="none" stroke="#d00" stroke-width="1.5" stroke-dasharray="4 2"><title>needle</title></rect>"##
        );
    }
    // Keys at or before query - window are out of its reach: the line
    // key = query - window, clipped to the map.
    if let Some(w) = window.filter(|&w| (w as usize) < blocks * block) {
        let reach = w as f64 / block.max(1) as f64 * cell;
        let _ = write!(
            s,
            r##"<line class="window" x1="{left}" y1="{:.2}" x2="{:.2}" y2="{:.2}" stroke="#fff" stroke-width="1.5" stroke-dasharray="3 3"><title>sliding window: each query reaches the last {w} tokens</title></line>"##,
            top + reach,
            left + size - reach,
            top + size
        );
    }
    let (lo, hi) = if signed {
        (format!("{:.2}", -max), format!("+{max:.2}"))
    } else {
        (format!("{:.1e}", max / 1e4), format!("{max:.1e}"))
    };
    let scale: fn(f64) -> String = if signed {
        |t| diverging(2.0 * t - 1.0)
    } else {
        viridis
    };
    legend(
        &mut s,
        left + 40.0,
        top + size + 12.0,
        size - 80.0,
        &lo,
        &hi,
        scale,
    );
    let notes = match values {
        MapValues::LogRatio { more, than } => [
            format!("orange: {more} attends more than {than};"),
            "blue: less (ln ratio per block); needle dashed".into(),
        ],
        MapValues::Attention => [
            "mean attention per block, log scale;".into(),
            "needle dashed".into(),
        ],
    };
    let notes = match window {
        Some(w) => [
            notes[0].clone(),
            format!("{}; white dashes: the {w}-token window's edge", notes[1]),
        ],
        None => notes,
    };
    for (k, note) in notes.iter().enumerate() {
        let _ = write!(
            s,
            r##"<text x="{left}" y="{}" font-size="10" fill="#555">{}</text>"##,
            top + size + 34.0 + 12.0 * k as f64,
            escape(note)
        );
    }
    s.push_str("</svg>");
    s
}

/// Grouped bars: one group per head, one bar per model.
pub fn head_bars(title: &str, unit: &str, models: &[&str], values: &[Vec<f32>]) -> String {
    let heads = values.iter().map(|v| v.len()).max().unwrap_or(0);
    let (left, top, plot_h, bar_w) = (56.0, 40.0, 160.0, 14.0);
    let group_w = bar_w * models.len() as f64 + 12.0;
    let w = left + group_w * heads as f64 + 16.0;
    let h = top + plot_h + 48.0;
    let max = values
        .iter()
        .flatten()
        .fold(0.0f32, |m, v| m.max(*v))
        .max(1e-30) as f64;
    let mut s = String::new();
    svg_open(&mut s, w.max(300.0), h, title);
    let _ = write!(
        s,
        r##"<text x="8" y="16" font-weight="bold">{}</text>"##,
        escape(title)
    );
    for (m, name) in models.iter().enumerate() {
        let x = 8.0 + 96.0 * m as f64;
        let _ = write!(
            s,
            r##"<rect x="{x}" y="24" width="10" height="10" fill="{}"/><text x="{}" y="33">{}</text>"##,
            MODEL_COLOURS[m % 3],
            x + 14.0,
            escape(name)
        );
    }
    let base = top + plot_h;
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{base}" x2="{}" y2="{base}" stroke="#888"/>"##,
        left + group_w * heads as f64
    );
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" text-anchor="end" font-size="10">{max:.3}</text><text x="{}" y="{base}" text-anchor="end" font-size="10">0</text>"##,
        left - 4.0,
        top + 4.0,
        left - 4.0
    );
    for hd in 0..heads {
        let gx = left + group_w * hd as f64 + 6.0;
        for (m, v) in values.iter().enumerate() {
            let Some(&x) = v.get(hd) else { continue };
            let bh = plot_h * (x as f64 / max).max(0.0);
            let _ = write!(
                s,
                r##"<rect class="bar" x="{:.1}" y="{:.1}" width="{bar_w}" height="{bh:.1}" fill="{}"><title>{}, head {hd}: {x:.3} {}</title></rect>"##,
                gx + bar_w * m as f64,
                base - bh,
                MODEL_COLOURS[m % 3],
                escape(models.get(m).copied().unwrap_or("")),
                escape(unit),
            );
        }
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{}" text-anchor="middle">{hd}</text>"##,
            gx + bar_w * models.len() as f64 / 2.0,
            base + 16.0
        );
    }
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">head ({})</text>"##,
        left + group_w * heads as f64 / 2.0,
        base + 34.0,
        escape(unit)
    );
    s.push_str("</svg>");
    s
}

/// The leave-one-out ranking: one bar per softmax layer, its drop in
/// recall (points) when ablated, from a zero line (a negative drop hangs
/// below it); the layers handed to the merge filled, the rest grey.
pub fn layer_drops(title: &str, drops: &[(usize, f64)], top: &[usize]) -> String {
    let (left, head, plot_h, bar_w, gap) = (56.0, 56.0, 180.0, 22.0, 8.0);
    let w = (left + (bar_w + gap) * drops.len() as f64 + 24.0).max(320.0);
    let h = head + plot_h + 48.0;
    let hi = drops.iter().fold(1.0f64, |m, d| m.max(d.1));
    let lo = drops.iter().fold(0.0f64, |m, d| m.min(d.1));
    let y = |v: f64| head + plot_h * (hi - v) / (hi - lo);
    let mut s = String::new();
    svg_open(&mut s, w, h, title);
    let _ = write!(
        s,
        r##"<text x="8" y="16" font-weight="bold">{}</text>"##,
        escape(title)
    );
    let _ = write!(
        s,
        r##"<rect x="8" y="26" width="10" height="10" fill="{}"/><text x="22" y="35">restored by the merge</text>"##,
        MODEL_COLOURS[2]
    );
    let _ = write!(
        s,
        r##"<rect x="170" y="26" width="10" height="10" fill="#bbb"/><text x="184" y="35">not restored</text>"##
    );
    let zero = y(0.0);
    let ticks = [Some(hi), Some(0.0), (lo < 0.0).then_some(lo)];
    for v in ticks.into_iter().flatten() {
        let _ = write!(
            s,
            r##"<text x="{}" y="{:.1}" text-anchor="end" font-size="10">{v:.0}</text>"##,
            left - 4.0,
            y(v) + 4.0
        );
    }
    for (i, &(layer, drop)) in drops.iter().enumerate() {
        let x = left + gap / 2.0 + (bar_w + gap) * i as f64;
        let (top_y, bh) = (y(drop.max(0.0)), (y(drop) - zero).abs());
        let fill = if top.contains(&layer) {
            MODEL_COLOURS[2]
        } else {
            "#bbb"
        };
        let _ = write!(
            s,
            r##"<rect class="bar" data-layer="{layer}" x="{x:.1}" y="{top_y:.1}" width="{bar_w}" height="{bh:.1}" fill="{fill}"><title>layer {layer}: recall drops {drop:.1} points when ablated</title></rect>"##
        );
        // The value just outside the bar's end, above or below the zero line.
        let value_y = if drop >= 0.0 {
            top_y - 3.0
        } else {
            top_y + bh + 11.0
        };
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{value_y:.1}" text-anchor="middle" font-size="10">{drop:.0}</text>"##,
            x + bar_w / 2.0
        );
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{layer}</text>"##,
            x + bar_w / 2.0,
            head + plot_h + 16.0
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{zero:.1}" x2="{:.1}" y2="{zero:.1}" stroke="#888"/>"##,
        left + (bar_w + gap) * drops.len() as f64
    );
    let _ = write!(
        s,
        r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#555">softmax layer (bar: points of recall lost when it is ablated)</text>"##,
        (w + left) / 2.0 - 20.0,
        head + plot_h + 36.0
    );
    s.push_str("</svg>");
    s
}

/// Where the question's attention lands along the prompt: for each model,
/// the share of one head's attention from the question's last rows on each
/// block of keys, as a line; the needle's blocks shaded.
pub fn question_attention(
    title: &str,
    models: &[&str],
    series: &[Vec<f32>],
    block: usize,
    needle: Option<NeedleBlocks>,
) -> String {
    let blocks = series.iter().map(|v| v.len()).max().unwrap_or(0).max(1);
    let (left, top, plot_w, plot_h) = (56.0, 44.0, 480.0, 160.0);
    let (w, h) = (left + plot_w + 16.0, top + plot_h + 48.0);
    let max = series
        .iter()
        .flatten()
        .fold(0.0f32, |m, v| m.max(*v))
        .max(1e-30) as f64;
    let x_of = |j: f64| left + plot_w * j / blocks as f64;
    let y_of = |v: f64| top + plot_h * (1.0 - v / max);
    let mut s = String::new();
    svg_open(&mut s, w, h, title);
    let _ = write!(
        s,
        r##"<text x="8" y="16" font-weight="bold">{}</text>"##,
        escape(title)
    );
    for (m, name) in models.iter().enumerate() {
        let x = 8.0 + 110.0 * m as f64;
        let _ = write!(
            s,
            r##"<rect x="{x}" y="24" width="10" height="10" fill="{}"/><text x="{}" y="33">{}</text>"##,
            MODEL_COLOURS[m % 3],
            x + 14.0,
            escape(name)
        );
    }
    if let Some(n) = needle {
        let (x0, x1) = (x_of(n.first as f64), x_of(n.last as f64 + 1.0));
        let _ = write!(
            s,
            r##"<rect class="needle" x="{x0:.1}" y="{top}" width="{:.1}" height="{plot_h}" fill="#ddd"><title>the needle</title></rect><text x="{:.1}" y="{}" text-anchor="start" font-size="10">needle</text>"##,
            (x1 - x0).max(1.0),
            x1 + 3.0,
            top + 10.0
        );
    }
    let base = top + plot_h;
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{base}" x2="{}" y2="{base}" stroke="#888"/>"##,
        left + plot_w
    );
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" text-anchor="end" font-size="10">{max:.3}</text><text x="{}" y="{base}" text-anchor="end" font-size="10">0</text>"##,
        left - 4.0,
        top + 4.0,
        left - 4.0
    );
    for (m, v) in series.iter().enumerate() {
        let points: Vec<String> = v
            .iter()
            .enumerate()
            .map(|(j, y)| format!("{:.1},{:.1}", x_of(j as f64 + 0.5), y_of(*y as f64)))
            .collect();
        let name = escape(models.get(m).copied().unwrap_or(""));
        let _ = write!(
            s,
            r##"<polyline class="series" fill="none" stroke="{}" stroke-width="2" points="{}"><title>{name}</title></polyline>"##,
            MODEL_COLOURS[m % 3],
            points.join(" ")
        );
    }
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">position in the prompt (blocks of {block} tokens): share of the question's attention</text>"##,
        left + plot_w / 2.0,
        base + 34.0
    );
    s.push_str("</svg>");
    s
}

/// One point of a tune's scatter.
pub struct TunePoint<'a> {
    pub label: &'a str,
    pub recall: f64,
    pub retention: f64,
}

/// A tune's candidates as recall (x) against retention (y), both in %:
/// the Pareto front joined by a line and filled, the rest hollow, the
/// recommended point ringed and named, each point naming its setting and
/// scores on hover. Shapes as well as colours tell the kinds apart.
pub fn tune_scatter(
    title: &str,
    retention: &str,
    points: &[TunePoint],
    front: &[usize],
    recommended: Option<usize>,
) -> String {
    let (left, top, plot_w, plot_h) = (56.0, 44.0, 440.0, 260.0);
    let (w, h) = (left + plot_w + 24.0, top + plot_h + 52.0);
    // Retention often sits near 100: zoom onto its range, in steps of 10.
    let lowest = points.iter().map(|p| p.retention).fold(100.0f64, f64::min);
    let y_lo = ((lowest - 2.0) / 10.0).floor().clamp(0.0, 9.0) * 10.0;
    let x_of = |r: f64| left + plot_w * r / 100.0;
    let y_of = |r: f64| top + plot_h * (1.0 - (r - y_lo) / (100.0 - y_lo));
    let mut s = String::new();
    svg_open(&mut s, w, h, title);
    let _ = write!(
        s,
        r##"<text x="8" y="16" font-weight="bold">{}</text>"##,
        escape(title)
    );
    let _ = write!(
        s,
        r##"<circle cx="14" cy="30" r="5" fill="{c}"/><text x="24" y="34">Pareto front</text><circle cx="124" cy="30" r="5" fill="none" stroke="#666"/><text x="134" y="34">other candidates</text><circle cx="262" cy="30" r="8" fill="none" stroke="{o}" stroke-width="2.5"/><text x="276" y="34">recommended</text>"##,
        c = MODEL_COLOURS[0],
        o = MODEL_COLOURS[1]
    );
    let base = top + plot_h;
    for t in 0..=10 {
        let x = x_of(t as f64 * 10.0);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{base}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle" font-size="10">{}</text>"##,
            base + 14.0,
            t * 10
        );
    }
    let mut y = y_lo;
    while y <= 100.0 {
        let yy = y_of(y);
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end" font-size="10">{y}</text>"##,
            left + plot_w,
            left - 4.0,
            yy + 3.0
        );
        y += 10.0;
    }
    let _ = write!(
        s,
        r##"<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>"##
    );
    let line: Vec<String> = front
        .iter()
        .filter_map(|&i| points.get(i))
        .map(|p| format!("{:.1},{:.1}", x_of(p.recall), y_of(p.retention)))
        .collect();
    let _ = write!(
        s,
        r##"<polyline class="front" fill="none" stroke="{}" stroke-width="1.5" stroke-dasharray="4 3" points="{}"/>"##,
        MODEL_COLOURS[0],
        line.join(" ")
    );
    for (i, p) in points.iter().enumerate() {
        let on_front = front.contains(&i);
        let (fill, stroke) = if on_front {
            (MODEL_COLOURS[0], MODEL_COLOURS[0])
        } else {
            ("none", "#666")
        };
        let _ = write!(
            s,
            r##"<circle class="candidate{}" data-index="{i}" cx="{:.1}" cy="{:.1}" r="5" fill="{fill}" stroke="{stroke}" stroke-width="1.5"><title>{}: recall {:.1}, {} {:.1}{}</title></circle>"##,
            if on_front { " on-front" } else { "" },
            x_of(p.recall),
            y_of(p.retention),
            escape(p.label),
            p.recall,
            escape(retention),
            p.retention,
            if on_front { " (on the front)" } else { "" }
        );
    }
    if let Some(p) = recommended.and_then(|i| points.get(i)) {
        let (x, y) = (x_of(p.recall), y_of(p.retention));
        // Beside the ring, on its own line: below it may sit another point.
        let anchor = if x > left + plot_w * 0.6 {
            "end"
        } else {
            "start"
        };
        let dx = if anchor == "end" { -14.0 } else { 14.0 };
        let _ = write!(
            s,
            r##"<circle class="recommended" cx="{x:.1}" cy="{y:.1}" r="9" fill="none" stroke="{}" stroke-width="2.5"/><text x="{:.1}" y="{:.1}" text-anchor="{anchor}" font-weight="bold">{}</text>"##,
            MODEL_COLOURS[1],
            x + dx,
            y + 4.0,
            escape(p.label)
        );
    }
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">recall: NIAH accuracy (%)</text>"##,
        left + plot_w / 2.0,
        base + 34.0
    );
    let _ = write!(
        s,
        r##"<text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle" fill="#555">{} (%)</text>"##,
        top + plot_h / 2.0,
        escape(retention)
    );
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_hit_their_ends_and_are_monotone_in_lightness() {
        assert_eq!(viridis(0.0), "#440154");
        assert_eq!(viridis(1.0), "#fde725");
        assert_eq!(diverging(0.0), "#f7f7f7");
        let luma = |h: &str| {
            let v = u32::from_str_radix(&h[1..], 16).unwrap();
            0.299 * (v >> 16) as f64 + 0.587 * ((v >> 8) & 255) as f64 + 0.114 * (v & 255) as f64
        };
        let l: Vec<f64> = (0..=20).map(|i| luma(&viridis(i as f64 / 20.0))).collect();
        assert!(
            l.windows(2).all(|w| w[1] > w[0]),
            "viridis must brighten steadily: {l:?}"
        );
    }

    #[test]
    fn text_on_every_scale_colour_meets_wcag_contrast() {
        let contrast = |a: &str, b: &str| {
            let (x, y) = (luminance(a), luminance(b));
            (x.max(y) + 0.05) / (x.min(y) + 0.05)
        };
        assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 1e-9);
        for i in 0..=100 {
            let x = i as f64 / 100.0;
            for bg in [viridis(x), blues(x), diverging(2.0 * x - 1.0)] {
                let text = if ink_on(&bg) == "#000" {
                    "#000000"
                } else {
                    "#ffffff"
                };
                assert!(
                    contrast(&bg, text) >= 4.5,
                    "{text} on {bg}: {:.2}",
                    contrast(&bg, text)
                );
            }
        }
    }

    #[test]
    fn heat_map_has_one_cell_per_result_and_escapes_names() {
        let s1 = TaskKind::Text(crate::niah::Task::S1);
        let cell = |length, depth, accuracy| CellResult {
            model: "<m>".into(),
            task: s1,
            length,
            depth,
            samples: 2,
            accuracy,
        };
        let cells = [
            cell(512, 0.0, 1.0),
            cell(512, 1.0, 0.5),
            cell(1024, 0.0, 0.0),
        ];
        let svg = niah_heat_map("<m>", s1, &[512, 1024], &[0.0, 1.0], &cells);
        assert_eq!(svg.matches(r##"class="cell""##).count(), 3);
        assert_eq!(svg.matches("not run").count(), 1);
        assert!(!svg.contains("<m>") && svg.contains("&lt;m&gt;"));
        assert!(svg.contains(r##"data-length="512" data-depth="1" data-accuracy="0.5""##));
    }

    #[test]
    fn layer_drops_hang_negative_bars_below_zero_and_fill_the_top() {
        let svg = layer_drops("<drops>", &[(2, 40.0), (5, -10.0), (9, 0.0)], &[2]);
        assert_eq!(svg.matches(r##"class="bar""##).count(), 3);
        assert!(!svg.contains("<drops>") && svg.contains("&lt;drops&gt;"));
        let attr = |layer: usize, name: &str| -> f64 {
            let bar = &svg[svg.find(&format!(r##"data-layer="{layer}""##)).unwrap()..];
            let at = bar.find(&format!(r##" {name}=""##)).unwrap() + name.len() + 3;
            bar[at..at + bar[at..].find('"').unwrap()].parse().unwrap()
        };
        // The zero line is where the 0 bar sits; 40 rises above it, -10 hangs below.
        let zero = attr(9, "y");
        assert_eq!(attr(9, "height"), 0.0);
        assert!((attr(2, "y") + attr(2, "height") - zero).abs() < 0.11);
        assert!((attr(5, "y") - zero).abs() < 0.11 && attr(5, "height") > 0.0);
        assert!(
            (attr(2, "height") / attr(5, "height") - 4.0).abs() < 0.01,
            "heights in proportion to the drops"
        );
        assert!(
            svg.contains(r##"data-layer="2" x="##)
                && svg.contains(&format!(r##"fill="{}"><title>layer 2"##, MODEL_COLOURS[2]))
        );
        assert!(svg.contains(r##"fill="#bbb"><title>layer 5"##));
    }
}

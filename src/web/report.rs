//! "Export report": one JSON of every setting and result on the page, and
//! each figure as SVG and PNG, offered as downloads. No weights and no
//! file names of the user's go in; checkpoints appear as fingerprints.

use js_sys::Array;
use serde_json::json;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, BlobPropertyBag, CanvasRenderingContext2d, HtmlCanvasElement, HtmlImageElement,
};

use super::dom::{
    field, js_err, need_document, offer_downloads, on_click_async, set_status, text_blob,
};
use super::share;
use super::state::{self, PageState};
use crate::app::routing::RoutingReport;
use crate::error::{Error, Result};
use crate::sweep::cells;

/// The routing panel's computation as `qklab routing --json` writes it,
/// with the maps of the layer and head the pickers show (the first layer's
/// first head before they are filled).
fn routing_report(s: &PageState) -> Option<RoutingReport> {
    let r = s.routing.as_ref()?;
    let picked = |id: &str| field(id).parse::<usize>().ok();
    let layer = picked("routing-layer")
        .or_else(|| r.profiles.first()?.layers.first().map(|l| l.layer))
        .unwrap_or(0);
    let head = picked("routing-head").unwrap_or(0);
    Some(RoutingReport::of(&r.spec, &r.profiles, layer, head))
}

fn report_json() -> serde_json::Value {
    state::with(|s| {
        let sweep = s.sweep.as_ref().map(|(settings, samples)| json!({ "settings": settings, "results": cells(samples), "samples": samples }));
        json!({
            "tool": format!("qklab {}", env!("CARGO_PKG_VERSION")),
            "link": web_sys::window().and_then(|w| w.location().href().ok()),
            "checkpoints": { "pre": share::get("pre"), "sft": share::get("sft"), "demo": s.demo.is_some(), "demo_pair": s.demo.map(|p| p.key) },
            "merge": s.merged.as_ref().map(|(spec, _)| spec),
            "niah": sweep,
            "routing": routing_report(s),
            "layers": s.layers,
        })
    })
}

/// Draws an SVG onto a canvas at twice its size and returns the PNG.
async fn png_of(svg: &str) -> Result<Blob> {
    let doc = need_document()?;
    let size = |attr: &str| -> f64 {
        let key = format!(" {attr}=\"");
        svg.find(&key)
            .and_then(|i| svg[i + key.len()..].split('"').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(300.0)
    };
    let (w, h) = (size("width"), size("height"));
    let img: HtmlImageElement = doc
        .create_element("img")
        .map_err(|e| js_err("img", e))?
        .unchecked_into();
    let svg_blob = text_blob(svg, "image/svg+xml")?;
    let url = web_sys::Url::create_object_url_with_blob(&svg_blob).map_err(|e| js_err("svg", e))?;
    img.set_src(&url);
    let decoded = JsFuture::from(img.decode()).await;
    let _ = web_sys::Url::revoke_object_url(&url);
    decoded.map_err(|e| js_err("svg image", e))?;
    let canvas: HtmlCanvasElement = doc
        .create_element("canvas")
        .map_err(|e| js_err("canvas", e))?
        .unchecked_into();
    canvas.set_width((2.0 * w) as u32);
    canvas.set_height((2.0 * h) as u32);
    let ctx: CanvasRenderingContext2d = canvas
        .get_context("2d")
        .map_err(|e| js_err("canvas", e))?
        .ok_or_else(|| Error::Page("no 2D canvas".into()))?
        .unchecked_into();
    ctx.draw_image_with_html_image_element_and_dw_and_dh(&img, 0.0, 0.0, 2.0 * w, 2.0 * h)
        .map_err(|e| js_err("canvas", e))?;
    let mut failed = None;
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let done =
            wasm_bindgen::closure::Closure::once_into_js(move |png: wasm_bindgen::JsValue| {
                let _ = resolve.call1(&wasm_bindgen::JsValue::NULL, &png);
            });
        failed = canvas
            .to_blob_with_type(done.unchecked_ref(), "image/png")
            .err();
    });
    if let Some(e) = failed {
        return Err(js_err("png", e));
    }
    let png = JsFuture::from(promise)
        .await
        .map_err(|e| js_err("png", e))?;
    png.dyn_into::<Blob>()
        .map_err(|_| Error::Page("the canvas gave no PNG".into()))
}

async fn bytes_of(b: &Blob) -> Result<Vec<u8>> {
    let buf = JsFuture::from(b.array_buffer())
        .await
        .map_err(|e| js_err("figure", e))?;
    Ok(js_sys::Uint8Array::new(&buf).to_vec())
}

/// One archive with the JSON and every figure as SVG and PNG (browsers
/// throttle a page that starts many downloads), and the JSON on its own.
async fn export() -> Result<()> {
    let figures = state::with(|s| s.figures.clone());
    let json = serde_json::to_string_pretty(&report_json())
        .map_err(|e| Error::Page(format!("the report as JSON: {e}")))?;
    let mut entries = vec![("qklab-report.json".to_string(), json.clone().into_bytes())];
    for (stem, svg) in &figures {
        entries.push((format!("figures/{stem}.svg"), svg.clone().into_bytes()));
        entries.push((
            format!("figures/{stem}.png"),
            bytes_of(&png_of(svg).await?).await?,
        ));
    }
    let zip = crate::zipfile::bundle(&entries)?;
    let bag = BlobPropertyBag::new();
    bag.set_type("application/zip");
    let zip = Blob::new_with_u8_array_sequence_and_options(
        &Array::of1(&js_sys::Uint8Array::from(zip.as_slice())),
        &bag,
    )
    .map_err(|e| js_err("zip", e))?;
    offer_downloads(
        "report-downloads",
        &[
            ("qklab-report.zip".into(), zip),
            (
                "qklab-report.json".into(),
                text_blob(&json, "application/json")?,
            ),
        ],
    )?;
    set_status(
        "report-status",
        &format!(
            "Report ready: the JSON and {} figure(s) as SVG and PNG, in one ZIP.",
            figures.len()
        ),
        false,
    );
    Ok(())
}

pub fn wire() {
    on_click_async("export-report", "report-status", export);
}

//! DOM helpers every panel uses. Text always goes in as text, never as
//! markup: file and tensor names are untrusted.

use js_sys::Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Blob, Document, Element, File, HtmlInputElement, HtmlSelectElement};

use crate::error::{Error, Result};
use crate::units::human_bytes;

pub fn document() -> Option<Document> {
    web_sys::window()?.document()
}

pub fn by_id(id: &str) -> Option<Element> {
    document()?.get_element_by_id(id)
}

/// `#id`, or an error naming it (the page is missing a part).
pub fn need(id: &str) -> Result<Element> {
    by_id(id).ok_or_else(|| Error::Page(format!("no #{id}")))
}

pub fn need_document() -> Result<Document> {
    document().ok_or_else(|| Error::Page("no document".into()))
}

/// A new `tag` element.
pub fn element(doc: &Document, tag: &str) -> Result<Element> {
    doc.create_element(tag).map_err(|e| js_err(tag, e))
}

/// Appends a `tag` element holding `text` as text, never as markup.
pub fn add(doc: &Document, parent: &Element, tag: &str, text: &str) -> Option<Element> {
    let e = doc.create_element(tag).ok()?;
    e.set_text_content(Some(text));
    parent.append_child(&e).ok()?;
    Some(e)
}

/// Sets a status line's text, marked as an error or not.
pub fn set_status(id: &str, text: &str, error: bool) {
    if let Some(s) = by_id(id) {
        s.set_text_content(Some(text));
        let _ = s.set_attribute("class", if error { "status error" } else { "status" });
    }
}

/// Sets a `<progress>` to `done` of `total`.
pub fn set_progress(id: &str, done: f64, total: f64) {
    if let Some(p) = by_id(id).and_then(|e| e.dyn_into::<web_sys::HtmlProgressElement>().ok()) {
        p.set_max(total.max(1.0));
        p.set_value(done);
    }
}

/// Enables or disables the buttons `ids`.
pub fn enable(ids: &[&str], on: bool) {
    for id in ids {
        if let Some(b) = by_id(id) {
            let _ = if on {
                b.remove_attribute("disabled")
            } else {
                b.set_attribute("disabled", "")
            };
        }
    }
}

pub fn js_err(file: &str, e: JsValue) -> Error {
    Error::io(
        file,
        e.as_string()
            .or_else(|| js_sys::JSON::stringify(&e).ok().and_then(|s| s.as_string()))
            .unwrap_or_default(),
    )
}

/// The value of a form field (input or select) by id.
pub fn field(id: &str) -> String {
    by_id(id)
        .and_then(|e| match e.dyn_ref::<HtmlSelectElement>() {
            Some(s) => Some(s.value()),
            None => e.dyn_into::<HtmlInputElement>().ok().map(|i| i.value()),
        })
        .unwrap_or_default()
}

/// Whether a checkbox is ticked (false for a missing one).
pub fn checked(id: &str) -> bool {
    by_id(id)
        .and_then(|e| e.dyn_into::<HtmlInputElement>().ok())
        .is_some_and(|i| i.checked())
}

pub fn set_checked(id: &str, on: bool) {
    if let Some(i) = by_id(id).and_then(|e| e.dyn_into::<HtmlInputElement>().ok()) {
        i.set_checked(on);
    }
}

/// Shows or hides an element (its `hidden` attribute).
pub fn set_shown(id: &str, shown: bool) {
    if let Some(e) = by_id(id) {
        let _ = e.toggle_attribute_with_force("hidden", !shown);
    }
}

pub fn set_field(id: &str, value: &str) {
    if let Some(e) = by_id(id) {
        match e.dyn_ref::<HtmlSelectElement>() {
            Some(select) => select.set_value(value),
            None => {
                if let Ok(input) = e.dyn_into::<HtmlInputElement>() {
                    input.set_value(value);
                }
            }
        }
    }
}

/// Replaces a `<select>`'s options with `values`.
pub fn set_options(id: &str, values: &[usize]) {
    let (Some(doc), Some(select)) = (document(), by_id(id)) else {
        return;
    };
    select.set_text_content(None);
    for v in values {
        if let Some(o) = add(&doc, &select, "option", &v.to_string()) {
            let _ = o.set_attribute("value", &v.to_string());
        }
    }
}

thread_local! {
    /// Object URLs of each download list, revoked when the list is replaced.
    static OFFERED: std::cell::RefCell<Vec<(String, Vec<String>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A Blob of `text`, typed `mime`.
pub fn text_blob(text: &str, mime: &str) -> Result<Blob> {
    let bag = web_sys::BlobPropertyBag::new();
    bag.set_type(mime);
    Blob::new_with_str_sequence_and_options(&Array::of1(&text.into()), &bag)
        .map_err(|e| js_err(mime, e))
}

/// Offers `value` as the one JSON file `name` in the list `list_id`.
pub fn offer_json(list_id: &str, name: &str, value: &impl serde::Serialize) -> Result<()> {
    let json =
        serde_json::to_string_pretty(value).map_err(|e| Error::Page(format!("{name}: {e}")))?;
    offer_downloads(
        list_id,
        &[(name.into(), text_blob(&json, "application/json")?)],
    )
}

/// Replaces the list `list_id` with one download link per file, labelled
/// with its name and size. Names may be untrusted: text and attributes only.
pub fn offer_downloads(list_id: &str, files: &[(String, Blob)]) -> Result<()> {
    let doc = need_document()?;
    let list = need(list_id)?;
    list.set_text_content(None);
    let old = OFFERED.with(|o| {
        let mut o = o.borrow_mut();
        let i = o.iter().position(|(id, _)| id == list_id);
        i.map(|i| o.remove(i).1).unwrap_or_default()
    });
    old.iter()
        .for_each(|url| drop(web_sys::Url::revoke_object_url(url)));
    let mut urls = Vec::new();
    for (name, blob) in files {
        let url = web_sys::Url::create_object_url_with_blob(blob).map_err(|e| js_err(name, e))?;
        let li = element(&doc, "li")?;
        let a = add(
            &doc,
            &li,
            "a",
            &format!("{name} ({})", human_bytes(blob.size() as u64)),
        )
        .ok_or_else(|| Error::Page("cannot add a link".into()))?;
        let _ = a.set_attribute("href", &url);
        let _ = a.set_attribute("download", name);
        let _ = list.append_child(&li);
        urls.push(url);
    }
    OFFERED.with(|o| o.borrow_mut().push((list_id.to_string(), urls)));
    Ok(())
}

pub fn on(target: &Element, event: &str, f: impl FnMut(web_sys::Event) + 'static) {
    let closure = Closure::<dyn FnMut(web_sys::Event)>::new(f);
    let _ = target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
    // The page lives as long as the listener: leaking the closure is the intent.
    closure.forget();
}

/// Runs `task` with its Run button off and its Cancel button on; its
/// error goes to the status line `#status_id`.
pub async fn while_running(
    run: &str,
    cancel: &str,
    status_id: &str,
    task: impl std::future::Future<Output = Result<()>>,
) {
    enable(&[run], false);
    enable(&[cancel], true);
    if let Err(e) = task.await {
        set_status(status_id, &e.to_string(), true);
    }
    enable(&[run], true);
    enable(&[cancel], false);
}

/// Runs `task` on each click of `#button_id`; its error goes to the
/// status line `#status_id`.
pub fn on_click_async<F: std::future::Future<Output = Result<()>> + 'static>(
    button_id: &str,
    status_id: &'static str,
    task: fn() -> F,
) {
    if let Some(b) = by_id(button_id) {
        on(&b, "click", move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = task().await {
                    set_status(status_id, &e.to_string(), true);
                }
            })
        });
    }
}

/// Appends one of [`crate::figures`]' SVGs in a `<figure data-figure=id>`.
/// The SVG is our own text, with every name in it escaped.
pub fn show_svg(parent: &Element, svg: &str, id: &str) -> Result<()> {
    let doc = need_document()?;
    let fig = element(&doc, "figure")?;
    let _ = fig.set_attribute("data-figure", id);
    fig.set_inner_html(svg);
    parent.append_child(&fig).map_err(|e| js_err("figure", e))?;
    Ok(())
}

pub fn files_of(list: &Array) -> Vec<File> {
    list.iter()
        .filter_map(|f| f.dyn_into::<File>().ok())
        .collect()
}

/// Calls `open` with the files an `<input type=file>` gets.
pub fn wire_picker<F: std::future::Future<Output = ()> + 'static>(
    id: &str,
    open: impl Fn(Array) -> F + 'static,
) {
    let Some(input) = by_id(id) else { return };
    on(&input, "change", move |ev| {
        let Some(input) = ev
            .target()
            .and_then(|t| t.dyn_into::<HtmlInputElement>().ok())
        else {
            return;
        };
        let Some(list) = input.files() else { return };
        let files = Array::new();
        for i in 0..list.length() {
            if let Some(f) = list.get(i) {
                files.push(&f);
            }
        }
        wasm_bindgen_futures::spawn_local(open(files));
    });
}

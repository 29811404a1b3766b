//! The experiment in the URL fragment: every panel writes its settings as
//! `key=value` pairs and a shared link fills the forms back. Values come
//! from whoever made the link, so each is checked against what its field
//! accepts and only ever set as a form value. No weights and no file names
//! go in: checkpoints are named by short fingerprints.

use super::dom::set_field;

/// The fragment's pairs, in order.
pub fn read() -> Vec<(String, String)> {
    let hash = web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default();
    hash.trim_start_matches('#')
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn get(key: &str) -> Option<String> {
    read().into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Sets `pairs` in the fragment, keeping the other panels' keys.
pub fn update(pairs: &[(&str, String)]) {
    let mut all = read();
    for (k, v) in pairs {
        match all.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.clone(),
            None => all.push((k.to_string(), v.clone())),
        }
    }
    let hash: Vec<String> = all.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Some(w) = web_sys::window() {
        let _ = w.location().set_hash(&hash.join("&"));
    }
}

/// Whether a fragment value is one its field accepts.
pub type Accepts = fn(&str) -> bool;

/// Fills the fields named by `accepts` (field id = fragment key) from the
/// fragment, each value only if its check passes.
pub fn restore(accepts: &[(&str, Accepts)]) {
    for (key, value) in read() {
        if let Some((id, ok)) = accepts.iter().find(|(id, _)| *id == key) {
            if ok(&value) {
                set_field(id, &value);
            }
        }
    }
}

/// A comma-separated list of finite, non-negative numbers.
pub fn number_list(v: &str) -> bool {
    !v.is_empty()
        && v.split(',')
            .all(|x| x.parse::<f64>().is_ok_and(|x| x.is_finite() && x >= 0.0))
}

pub fn whole_number(v: &str) -> bool {
    v.parse::<u64>().is_ok()
}

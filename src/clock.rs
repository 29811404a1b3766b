//! Wall-clock milliseconds, natively and in wasm (where `std::time::Instant`
//! panics): for sizing GPU submissions by how long they take.

/// Milliseconds since an arbitrary start.
pub fn now_ms() -> f64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
    }
    #[cfg(target_arch = "wasm32")]
    js_sys::Date::now()
}

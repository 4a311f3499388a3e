//! The four built-in modes, compiled by `build.rs` and embedded in the binary.

/// `(id, component bytes)` of each built-in mode.
pub const MODES: [(&str, &[u8]); 4] = [
    ("classic", include_bytes!(env!("DASHDICE_MODE_CLASSIC"))),
    ("zero-hour", include_bytes!(env!("DASHDICE_MODE_ZERO_HOUR"))),
    ("last-line", include_bytes!(env!("DASHDICE_MODE_LAST_LINE"))),
    ("true-grit", include_bytes!(env!("DASHDICE_MODE_TRUE_GRIT"))),
];

/// The component bytes of a built-in mode.
pub fn bytes(id: &str) -> Option<&'static [u8]> {
    MODES.iter().find(|(m, _)| *m == id).map(|(_, b)| *b)
}

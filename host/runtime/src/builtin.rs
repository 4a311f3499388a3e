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

/// The built-in modes as clients see them. Their `info` comes from the same
/// rules compiled natively (the component's `info` runs the same code), so
/// listing them compiles nothing.
pub fn listings() -> Vec<dashdice_proto::catalog::ModeListing> {
    use dashdice_mode_sdk::Rules;
    let infos = [
        dashdice_mode_classic::Classic::info(),
        dashdice_mode_zero_hour::ZeroHour::info(),
        dashdice_mode_last_line::LastLine::info(),
        dashdice_mode_true_grit::TrueGrit::info(),
    ];
    infos
        .into_iter()
        .filter_map(|info| {
            let bytes = bytes(&info.id)?;
            Some(dashdice_proto::catalog::ModeListing {
                hash: crate::ModeHash::of(bytes),
                info,
                builtin: true,
            })
        })
        .collect()
}

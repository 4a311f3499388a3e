//! Identifiers every role agrees on: their limits and how fresh ones are made.

/// The largest number of players in one match.
pub const MAX_PLAYERS: usize = 16;
/// The longest player id.
pub const MAX_PLAYER_ID: usize = 128;

/// The operating system had no randomness to give.
#[derive(Debug, thiserror::Error)]
#[error("the operating system has no randomness to give: {0}")]
pub struct NoRandomness(pub String);

/// A fresh random match id (32 hex digits).
pub fn new_match_id() -> Result<String, NoRandomness> {
    random_hex::<16>()
}

/// `N` random bytes from the operating system, in lower-case hex.
pub fn random_hex<const N: usize>() -> Result<String, NoRandomness> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| NoRandomness(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// Whether `id` can name a player or a match in a key, a subject token or a
/// document path: 1 to [`MAX_PLAYER_ID`] letters, digits, `-` or `_`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_PLAYER_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

//! The mode catalog as it is stored on NATS: which modes a cluster plays,
//! at which version, and who published them.
//!
//! Three JetStream buckets (named in [`crate::bus`]) hold it:
//! - an object store of component bytes, each object named by its SHA-256
//!   ([`ModeHash`]) and carrying its publisher's signature;
//! - a KV of [`ModePointer`]s, one per mode id: the current version, the
//!   previous ones (for rollback), whether the mode is retired, and what is
//!   known about every version ever published;
//! - a KV of [`Quarantine`]s, one per withdrawn version hash, written by the
//!   match hosts that saw it fault.
//!
//! Only designers write the first two (NATS permissions); match hosts write
//! the third. Every role reads all three, so "what is playable" is decided
//! the same way everywhere by [`ModePointer::playable`].

use std::collections::BTreeMap;

use dashdice_mode_sdk::ModeInfo;
use serde::{Deserialize, Serialize};

use crate::ModeHash;

/// How many earlier versions a pointer remembers for rollback.
pub const MAX_PREVIOUS: usize = 16;

/// A mode as clients see it: what `GET /api/v1/modes` lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeListing {
    #[serde(flatten)]
    pub info: ModeInfo,
    /// The version new matches get now.
    pub hash: ModeHash,
    /// Built into the binary (true) or published to the catalog.
    pub builtin: bool,
}

/// Whether a mode takes new matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointerState {
    /// New matches get `current`.
    #[default]
    Active,
    /// No new matches; running ones finish on their version.
    Retired,
}

/// One published version of a mode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedVersion {
    pub hash: ModeHash,
    /// What the component said of itself when it was checked.
    pub info: ModeInfo,
    /// The publisher's ed25519 public key, hex.
    pub public_key: String,
    /// The signature over [`signed_message`] of `hash`, hex.
    pub signature: String,
    /// Who published (free text: the publisher's `--as`, or the key id).
    pub published_by: String,
    pub published_ms: u64,
    /// The component's size in bytes.
    pub size: u64,
}

/// A canary: `hash` gets `percent` of new matches until promoted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canary {
    pub hash: ModeHash,
    pub percent: u8,
}

/// The KV value for one mode id.
///
/// Changed only by compare-and-set on the KV revision, so two publishers
/// racing cannot lose each other's version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModePointer {
    pub id: String,
    #[serde(default)]
    pub state: PointerState,
    /// The version new matches get.
    pub current: ModeHash,
    /// Earlier currents, newest first: what `rollback` goes back to.
    #[serde(default)]
    pub previous: Vec<ModeHash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
    /// Every version ever published under this id, by hash.
    #[serde(default)]
    pub versions: BTreeMap<ModeHash, PublishedVersion>,
    pub updated_ms: u64,
}

impl ModePointer {
    /// The version new matches get, given which hashes are quarantined: the
    /// current one, or (when it is quarantined) the newest previous one that
    /// is not. `None` when retired or when nothing is left.
    pub fn playable(&self, quarantined: impl Fn(&ModeHash) -> bool) -> Option<ModeHash> {
        if self.state == PointerState::Retired {
            return None;
        }
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|h| !quarantined(h))
            .copied()
    }

    /// The version for a new match whose id hashes to `roll` (0..100): the
    /// canary's share goes to the canary unless it is quarantined.
    pub fn pick(&self, quarantined: impl Fn(&ModeHash) -> bool, roll: u8) -> Option<ModeHash> {
        let base = self.playable(&quarantined)?;
        match &self.canary {
            Some(c) if roll < c.percent && !quarantined(&c.hash) => Some(c.hash),
            _ => Some(base),
        }
    }

    /// Makes `hash` current, remembering the old current for rollback.
    pub fn advance(&mut self, hash: ModeHash, now_ms: u64) {
        if self.current != hash {
            self.previous.retain(|h| *h != hash && *h != self.current);
            self.previous.insert(0, self.current);
            self.previous.truncate(MAX_PREVIOUS);
            self.current = hash;
        }
        self.state = PointerState::Active;
        self.canary = None;
        self.updated_ms = now_ms;
    }

    /// Goes back to the newest previous version; `None` if there is none.
    /// The version rolled back from is not kept for a later rollback.
    pub fn roll_back(&mut self, now_ms: u64) -> Option<ModeHash> {
        if self.previous.is_empty() {
            return None;
        }
        let back = self.previous.remove(0);
        self.current = back;
        self.state = PointerState::Active;
        self.canary = None;
        self.updated_ms = now_ms;
        Some(back)
    }

    /// The listing of the version new matches get (the canary aside).
    pub fn listing(&self, quarantined: impl Fn(&ModeHash) -> bool) -> Option<ModeListing> {
        let hash = self.playable(quarantined)?;
        let version = self.versions.get(&hash)?;
        Some(ModeListing {
            info: version.info.clone(),
            hash,
            builtin: false,
        })
    }
}

/// A version withdrawn from new matches because its calls faulted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    pub mode: String,
    pub hash: ModeHash,
    /// Faults and calls in the window that tripped it, and which kinds.
    pub faults: u64,
    pub calls: u64,
    pub reason: String,
    /// Which match host withdrew it.
    pub by: String,
    pub at_ms: u64,
}

/// What a publisher signs for a component with this hash: a domain tag and
/// the digest, so a signature over anything else can never pass for one.
pub fn signed_message(hash: &ModeHash) -> Vec<u8> {
    let mut message = b"dashdice-mode-v1\0".to_vec();
    message.extend_from_slice(&hash.to_bytes());
    message
}

/// A mode id as the catalog accepts it: 1 to 32 of `a-z`, `0-9` and `-`,
/// starting with a letter (also a valid KV key and subject token).
pub fn valid_mode_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn h(n: u8) -> ModeHash {
        ModeHash::from_bytes([n; 32])
    }

    fn pointer() -> ModePointer {
        ModePointer {
            id: "m".into(),
            state: PointerState::Active,
            current: h(1),
            previous: vec![],
            canary: None,
            versions: BTreeMap::new(),
            updated_ms: 0,
        }
    }

    #[test]
    fn advance_and_roll_back_walk_the_history() {
        let mut p = pointer();
        p.advance(h(2), 1);
        p.advance(h(3), 2);
        assert_eq!((p.current, p.previous.clone()), (h(3), vec![h(2), h(1)]));
        assert_eq!(p.roll_back(3), Some(h(2)));
        assert_eq!((p.current, p.previous.clone()), (h(2), vec![h(1)]));
        // Publishing the same bytes again changes nothing in the history.
        p.advance(h(2), 4);
        assert_eq!(p.previous, vec![h(1)]);
        assert_eq!(p.roll_back(5), Some(h(1)));
        assert_eq!(p.roll_back(6), None);
    }

    #[test]
    fn quarantine_falls_back_and_retire_stops_everything() {
        let mut p = pointer();
        p.advance(h(2), 1);
        let q: BTreeSet<_> = [h(2)].into();
        assert_eq!(p.playable(|x| q.contains(x)), Some(h(1)));
        let all: BTreeSet<_> = [h(1), h(2)].into();
        assert_eq!(p.playable(|x| all.contains(x)), None);
        p.state = PointerState::Retired;
        assert_eq!(p.playable(|_| false), None);
    }

    #[test]
    fn canary_takes_its_share_only() {
        let mut p = pointer();
        p.canary = Some(Canary {
            hash: h(9),
            percent: 10,
        });
        assert_eq!(p.pick(|_| false, 9), Some(h(9)));
        assert_eq!(p.pick(|_| false, 10), Some(h(1)));
        assert_eq!(p.pick(|x| *x == h(9), 0), Some(h(1)));
    }

    #[test]
    fn mode_ids_are_url_safe() {
        assert!(valid_mode_id("zero-hour"));
        assert!(valid_mode_id("m2"));
        for bad in ["", "Zero", "-x", "a.b", "a b", &"x".repeat(33), "2x"] {
            assert!(!valid_mode_id(bad), "{bad:?}");
        }
    }
}

//! A mode version's identity: the SHA-256 of its component bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The SHA-256 of a component's bytes. Two uploads with the same bytes are the
/// same version; any change to the bytes is a new version.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModeHash([u8; 32]);

impl ModeHash {
    pub fn of(bytes: &[u8]) -> Self {
        ModeHash(Sha256::digest(bytes).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ModeHash(bytes)
    }

    pub fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// The first 12 hex digits, for logs and people.
    pub fn short(&self) -> String {
        self.to_string()[..12].to_owned()
    }
}

impl fmt::Display for ModeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ModeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModeHash({self})")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a mode hash is 64 hex digits")]
pub struct BadHash;

impl FromStr for ModeHash {
    type Err = BadHash;
    fn from_str(s: &str) -> Result<Self, BadHash> {
        let s = s.strip_prefix("sha256:").unwrap_or(s);
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| BadHash)?;
        Ok(ModeHash(out))
    }
}

impl Serialize for ModeHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ModeHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_and_round_trip() {
        let h = ModeHash::of(b"abc");
        assert_eq!(
            h.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(h.to_string().parse::<ModeHash>().unwrap(), h);
        assert_eq!(format!("sha256:{h}").parse::<ModeHash>().unwrap(), h);
        assert!("xyz".parse::<ModeHash>().is_err());
        assert!("é".repeat(32).parse::<ModeHash>().is_err());
    }
}

//! Ed25519 signatures over mode components: the publisher signs, every host
//! verifies against the keys it trusts.
//!
//! What is signed is [`signed_message`]: a domain tag and the component's
//! SHA-256. Keys travel as hex: a private key is its 32-byte seed, a public
//! key its 32 bytes.

use std::fmt;
use std::path::Path;

use dashdice_proto::ModeHash;
use dashdice_proto::catalog::signed_message;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// Why a key or a signature was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("a key is 64 hex digits (32 bytes){0}")]
    BadKey(String),
    #[error("cannot read the publisher key {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("no randomness for a new key")]
    NoRandomness,
    #[error("the component is signed by {0}, which this host does not trust")]
    Untrusted(String),
    #[error("the signature does not match the component (forged, or signed for other bytes)")]
    Invalid,
    #[error("the component carries no signature")]
    Unsigned,
}

/// A publisher's private key.
pub struct PublisherKey {
    pair: Ed25519KeyPair,
    seed: [u8; 32],
}

impl PublisherKey {
    /// A key from its 32-byte seed in hex (whitespace around it is ignored).
    pub fn from_hex(text: &str) -> Result<Self, SignatureError> {
        let seed = decode32(text.trim())?;
        Self::from_seed(seed)
    }

    fn from_seed(seed: [u8; 32]) -> Result<Self, SignatureError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| SignatureError::BadKey(String::new()))?;
        Ok(PublisherKey { pair, seed })
    }

    /// A fresh random key.
    pub fn generate() -> Result<Self, SignatureError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| SignatureError::NoRandomness)?;
        Self::from_seed(seed)
    }

    pub fn read(path: &Path) -> Result<Self, SignatureError> {
        let text = std::fs::read_to_string(path).map_err(|source| SignatureError::KeyFile {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_hex(&text).map_err(|e| match e {
            SignatureError::BadKey(_) => {
                SignatureError::BadKey(format!(" (in {})", path.display()))
            }
            other => other,
        })
    }

    /// Reads the key at `path`, or makes one there (readable by its owner
    /// only) if there is none: what `dashdice up` does for its dev key.
    pub fn read_or_create(path: &Path) -> Result<Self, SignatureError> {
        if path.exists() {
            return Self::read(path);
        }
        let key = Self::generate()?;
        let io = |source| SignatureError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        write_private(path, &format!("{}\n", hex::encode(key.seed))).map_err(io)?;
        Ok(key)
    }

    pub fn public(&self) -> PublicKey {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(bytes)
    }

    /// The signature of the component with this hash, hex.
    pub fn sign(&self, hash: &ModeHash) -> String {
        hex::encode(self.pair.sign(&signed_message(hash)).as_ref())
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// A publisher's public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    pub fn from_hex(text: &str) -> Result<Self, SignatureError> {
        decode32(text.trim()).map(PublicKey)
    }

    /// Whether `signature` (hex) signs the component with this hash.
    pub fn verifies(&self, hash: &ModeHash, signature: &str) -> bool {
        let Ok(signature) = hex::decode(signature.trim()) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&signed_message(hash), &signature)
            .is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// The publisher keys a host accepts components from. Empty trusts nobody:
/// such a host plays only its built-in modes.
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys(Vec<PublicKey>);

impl TrustedKeys {
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        TrustedKeys(keys.into_iter().collect())
    }

    /// Keys from hex, separated by commas or whitespace.
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        text.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(PublicKey::from_hex)
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedKeys)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn keys(&self) -> &[PublicKey] {
        &self.0
    }

    /// Checks that `signature` by `public_key` (both hex) signs `hash` and
    /// that the key is trusted.
    pub fn verify(
        &self,
        hash: &ModeHash,
        public_key: Option<&str>,
        signature: Option<&str>,
    ) -> Result<PublicKey, SignatureError> {
        let (Some(key), Some(signature)) = (public_key, signature) else {
            return Err(SignatureError::Unsigned);
        };
        let key = PublicKey::from_hex(key)?;
        if !self.0.contains(&key) {
            return Err(SignatureError::Untrusted(key.to_string()));
        }
        if key.verifies(hash, signature) {
            Ok(key)
        } else {
            Err(SignatureError::Invalid)
        }
    }
}

fn decode32(text: &str) -> Result<[u8; 32], SignatureError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).map_err(|_| SignatureError::BadKey(String::new()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trusted_signature_verifies_and_nothing_else_does() {
        let key = PublisherKey::generate().unwrap();
        let other = PublisherKey::generate().unwrap();
        let hash = ModeHash::of(b"component");
        let signature = key.sign(&hash);
        let public = key.public().to_string();
        let trusted = TrustedKeys::new([key.public()]);
        assert!(
            trusted
                .verify(&hash, Some(&public), Some(&signature))
                .is_ok()
        );
        // Other bytes, another signer, a forged key claim, nothing at all.
        let other_hash = ModeHash::of(b"other");
        assert!(matches!(
            trusted.verify(&other_hash, Some(&public), Some(&signature)),
            Err(SignatureError::Invalid)
        ));
        let theirs = other.sign(&hash);
        assert!(matches!(
            trusted.verify(&hash, Some(&other.public().to_string()), Some(&theirs)),
            Err(SignatureError::Untrusted(_))
        ));
        assert!(matches!(
            trusted.verify(&hash, Some(&public), Some(&theirs)),
            Err(SignatureError::Invalid)
        ));
        assert!(matches!(
            trusted.verify(&hash, None, None),
            Err(SignatureError::Unsigned)
        ));
        assert!(matches!(
            TrustedKeys::default().verify(&hash, Some(&public), Some(&signature)),
            Err(SignatureError::Untrusted(_))
        ));
    }

    #[test]
    fn keys_round_trip_through_hex_and_files() {
        let dir = std::env::temp_dir().join(format!("dd-key-{}", std::process::id()));
        let path = dir.join("publisher.key");
        let _ = std::fs::remove_file(&path);
        let made = PublisherKey::read_or_create(&path).unwrap();
        let read = PublisherKey::read_or_create(&path).unwrap();
        assert_eq!(made.public(), read.public());
        let parsed = TrustedKeys::parse(&format!(" {}, {}", made.public(), read.public())).unwrap();
        assert_eq!(parsed.keys().len(), 2);
        assert!(PublisherKey::from_hex("zz").is_err());
        assert!(TrustedKeys::parse("abc").is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}

//! The three JetStream buckets of the catalog, and every change to them.
//!
//! A publish stores the bytes first (object named by their SHA-256, so a
//! repeat is harmless) and only then moves the pointer; a host that sees the
//! pointer can always fetch what it names. Pointers change by
//! compare-and-set on the KV revision, retried on conflict, so concurrent
//! publishers, rollbacks and retirements never lose each other's change.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store};
use dashdice_mode_sdk::ModeInfo;
use dashdice_proto::ModeHash;
use dashdice_proto::bus::{
    MODE_HEALTH_BUCKET, MODE_INDEX_BUCKET, MODE_OBJECTS_BUCKET, OBJECT_MODE, OBJECT_PUBLIC_KEY,
    OBJECT_SIGNATURE,
};
use dashdice_proto::catalog::{
    Canary, ModePointer, PointerState, PublishedVersion, Quarantine, valid_mode_id,
};
use dashdice_proto::clock::now_ms;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use crate::signing::{PublisherKey, SignatureError, TrustedKeys};

/// The largest component the catalog takes.
pub const MAX_COMPONENT_BYTES: usize = 32 << 20;
/// Component bytes travel in chunks of this size.
pub const OBJECT_CHUNK_BYTES: usize = 32 << 10;
/// How often a pointer update is retried after losing a race.
const CAS_ATTEMPTS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "the mode catalog's buckets are missing ({0}); `dashdice up` and `dashdice mode publish` create them"
    )]
    Missing(String),
    #[error("NATS: {0}")]
    Nats(String),
    #[error("no mode {0:?} in the catalog")]
    UnknownMode(String),
    #[error("no component {0} in the catalog")]
    UnknownVersion(ModeHash),
    #[error("mode {0:?} has no earlier version to roll back to")]
    NothingToRollBack(String),
    #[error("mode id {0:?}: ids are 1 to 32 of a-z, 0-9 and '-', starting with a letter")]
    BadId(String),
    #[error("the component is {0} bytes; the catalog takes at most {MAX_COMPONENT_BYTES}")]
    TooLarge(usize),
    #[error("component {hash}: {source}")]
    Signature {
        hash: ModeHash,
        source: SignatureError,
    },
    #[error("component {0}: the stored bytes do not hash to their name")]
    Tampered(ModeHash),
    #[error("stored catalog data could not be read: {0}")]
    Corrupt(String),
    #[error("the pointer of {0:?} kept changing; try again")]
    Contention(String),
}

fn nats(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Nats(e.to_string())
}

/// What a publish did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Published {
    pub pointer: ModePointer,
    pub hash: ModeHash,
    /// False when these bytes were already current.
    pub changed: bool,
}

/// Handles on the catalog's buckets.
#[derive(Clone)]
pub struct Catalog {
    index: kv::Store,
    health: kv::Store,
    /// `None` when opened for reading pointers only ([`Catalog::open_index`]).
    objects: Option<object_store::ObjectStore>,
}

impl Catalog {
    /// Opens the buckets, which must exist.
    pub async fn open(client: &async_nats::Client) -> Result<Self, CatalogError> {
        let mut catalog = Self::open_index(client).await?;
        let js = jetstream::new(client.clone());
        catalog.objects = Some(
            js.get_object_store(MODE_OBJECTS_BUCKET)
                .await
                .map_err(|e| CatalogError::Missing(e.to_string()))?,
        );
        Ok(catalog)
    }

    /// Opens the two KV buckets only: for roles that follow what is
    /// playable but never load a component (gateway, matchmaker), whose NATS
    /// users may not read the objects.
    pub async fn open_index(client: &async_nats::Client) -> Result<Self, CatalogError> {
        let js = jetstream::new(client.clone());
        let missing = |e: &dyn std::fmt::Display| CatalogError::Missing(e.to_string());
        Ok(Catalog {
            index: js
                .get_key_value(MODE_INDEX_BUCKET)
                .await
                .map_err(|e| missing(&e))?,
            health: js
                .get_key_value(MODE_HEALTH_BUCKET)
                .await
                .map_err(|e| missing(&e))?,
            objects: None,
        })
    }

    fn objects(&self) -> Result<&object_store::ObjectStore, CatalogError> {
        self.objects.as_ref().ok_or_else(|| {
            CatalogError::Missing("opened for pointers only, not component objects".into())
        })
    }

    /// Opens the buckets, creating any that is missing (designers, `up`).
    pub async fn create(client: &async_nats::Client) -> Result<Self, CatalogError> {
        let js = jetstream::new(client.clone());
        let index = kv_bucket(
            &js,
            MODE_INDEX_BUCKET,
            "dashdice: the current version of every published mode",
            16,
        )
        .await?;
        let health = kv_bucket(
            &js,
            MODE_HEALTH_BUCKET,
            "dashdice: mode versions withdrawn for faulting",
            4,
        )
        .await?;
        let objects = match js.get_object_store(MODE_OBJECTS_BUCKET).await {
            Ok(os) => os,
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: MODE_OBJECTS_BUCKET.to_owned(),
                    description: Some("dashdice: mode components by SHA-256".into()),
                    storage: jetstream::stream::StorageType::File,
                    num_replicas: dashdice_proto::bus::stream_replicas(),
                    ..Default::default()
                })
                .await
                .map_err(nats)?,
        };
        Ok(Catalog {
            index,
            health,
            objects: Some(objects),
        })
    }

    /// Stores signed component bytes and makes them the current version of
    /// `info.id`. `info` is what the component said of itself when checked.
    pub async fn publish(
        &self,
        bytes: &[u8],
        info: ModeInfo,
        key: &PublisherKey,
        published_by: &str,
    ) -> Result<Published, CatalogError> {
        if !valid_mode_id(&info.id) {
            return Err(CatalogError::BadId(info.id));
        }
        if bytes.len() > MAX_COMPONENT_BYTES {
            return Err(CatalogError::TooLarge(bytes.len()));
        }
        let hash = ModeHash::of(bytes);
        let signature = key.sign(&hash);
        let public_key = key.public().to_string();
        let mut metadata = HashMap::new();
        metadata.insert(OBJECT_MODE.to_owned(), info.id.clone());
        metadata.insert(OBJECT_PUBLIC_KEY.to_owned(), public_key.clone());
        metadata.insert(OBJECT_SIGNATURE.to_owned(), signature.clone());
        let object = object_store::ObjectMetadata {
            name: hash.to_string(),
            description: Some(format!("{} {}", info.id, info.version)),
            // Below nats-server's max_payload (64 KiB in nats/nats-server.conf;
            // the client's default chunk is 128 KiB).
            chunk_size: Some(OBJECT_CHUNK_BYTES),
            metadata,
            ..Default::default()
        };
        let mut reader = bytes;
        self.objects()?
            .put(object, &mut reader)
            .await
            .map_err(nats)?;
        let now = now_ms();
        let version = PublishedVersion {
            hash,
            info: info.clone(),
            public_key,
            signature,
            published_by: published_by.to_owned(),
            published_ms: now,
            size: bytes.len() as u64,
        };
        let mut changed = true;
        let pointer = self
            .change(&info.id, |pointer| {
                let pointer = match pointer {
                    Some(mut p) => {
                        changed = p.current != hash || p.state != PointerState::Active;
                        p.versions.insert(hash, version.clone());
                        p.advance(hash, now);
                        p
                    }
                    None => ModePointer {
                        id: info.id.clone(),
                        state: PointerState::Active,
                        current: hash,
                        previous: Vec::new(),
                        canary: None,
                        versions: [(hash, version.clone())].into(),
                        updated_ms: now,
                    },
                };
                Ok(pointer)
            })
            .await?;
        Ok(Published {
            pointer,
            hash,
            changed,
        })
    }

    /// Goes back to the mode's previous version.
    pub async fn roll_back(&self, id: &str) -> Result<ModePointer, CatalogError> {
        self.change(id, |pointer| {
            let mut p = pointer.ok_or_else(|| CatalogError::UnknownMode(id.to_owned()))?;
            p.roll_back(now_ms())
                .ok_or_else(|| CatalogError::NothingToRollBack(id.to_owned()))?;
            Ok(p)
        })
        .await
    }

    /// No new matches of the mode; running ones finish. Publishing again
    /// brings it back.
    pub async fn retire(&self, id: &str) -> Result<ModePointer, CatalogError> {
        self.change(id, |pointer| {
            let mut p = pointer.ok_or_else(|| CatalogError::UnknownMode(id.to_owned()))?;
            p.state = PointerState::Retired;
            p.canary = None;
            p.updated_ms = now_ms();
            Ok(p)
        })
        .await
    }

    /// Gives an already published version `percent` of new matches (0
    /// removes the canary); `promote` makes it current instead.
    pub async fn canary(
        &self,
        id: &str,
        hash: ModeHash,
        percent: u8,
        promote: bool,
    ) -> Result<ModePointer, CatalogError> {
        self.change(id, |pointer| {
            let mut p = pointer.ok_or_else(|| CatalogError::UnknownMode(id.to_owned()))?;
            if !p.versions.contains_key(&hash) {
                return Err(CatalogError::UnknownVersion(hash));
            }
            if promote {
                p.advance(hash, now_ms());
            } else {
                p.canary = (percent > 0).then_some(Canary {
                    hash,
                    percent: percent.min(100),
                });
                p.updated_ms = now_ms();
            }
            Ok(p)
        })
        .await
    }

    /// Read, change, compare-and-set on the revision; again on conflict.
    async fn change(
        &self,
        id: &str,
        mut edit: impl FnMut(Option<ModePointer>) -> Result<ModePointer, CatalogError>,
    ) -> Result<ModePointer, CatalogError> {
        if !valid_mode_id(id) {
            return Err(CatalogError::BadId(id.to_owned()));
        }
        for _ in 0..CAS_ATTEMPTS {
            let entry = self.index.entry(id).await.map_err(nats)?;
            let (old, revision) = match entry {
                Some(e) if e.operation == kv::Operation::Put => {
                    (Some(decode::<ModePointer>(&e.value)?), Some(e.revision))
                }
                Some(e) => (None, Some(e.revision)),
                None => (None, None),
            };
            let new = edit(old)?;
            let body = bytes::Bytes::from(serde_json::to_vec(&new).map_err(corrupt)?);
            let written = match revision {
                Some(r) => self
                    .index
                    .update(id, body, r)
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        (
                            e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                            e.to_string(),
                        )
                    }),
                None => self.index.create(id, body).await.map(|_| ()).map_err(|e| {
                    (
                        e.kind() == kv::CreateErrorKind::AlreadyExists,
                        e.to_string(),
                    )
                }),
            };
            match written {
                Ok(()) => return Ok(new),
                Err((true, _)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                Err((false, e)) => return Err(CatalogError::Nats(e)),
            }
        }
        Err(CatalogError::Contention(id.to_owned()))
    }

    pub async fn pointer(&self, id: &str) -> Result<Option<ModePointer>, CatalogError> {
        match self.index.entry(id).await.map_err(nats)? {
            Some(e) if e.operation == kv::Operation::Put => Ok(Some(decode(&e.value)?)),
            _ => Ok(None),
        }
    }

    /// Every mode's pointer.
    pub async fn pointers(&self) -> Result<Vec<ModePointer>, CatalogError> {
        let mut out = Vec::new();
        let mut keys = self.index.keys().await.map_err(nats)?;
        while let Some(key) = keys.next().await {
            if let Some(p) = self.pointer(&key.map_err(nats)?).await? {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Every quarantined version.
    pub async fn quarantines(&self) -> Result<Vec<Quarantine>, CatalogError> {
        let mut out = Vec::new();
        let mut keys = self.health.keys().await.map_err(nats)?;
        while let Some(key) = keys.next().await {
            if let Some(e) = self.health.entry(key.map_err(nats)?).await.map_err(nats)?
                && e.operation == kv::Operation::Put
            {
                out.push(decode(&e.value)?);
            }
        }
        Ok(out)
    }

    /// Withdraws a version from new matches. Returns false if it was
    /// withdrawn already (the first report stands).
    pub async fn quarantine(&self, q: &Quarantine) -> Result<bool, CatalogError> {
        let body = bytes::Bytes::from(serde_json::to_vec(q).map_err(corrupt)?);
        match self.health.create(q.hash.to_string(), body).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(nats(e)),
        }
    }

    /// Lets a quarantined version take new matches again.
    pub async fn release(&self, hash: ModeHash) -> Result<(), CatalogError> {
        self.health.delete(hash.to_string()).await.map_err(nats)
    }

    /// The bytes of a published version, checked: they hash to their name,
    /// and their signature is by a trusted key.
    pub async fn fetch(
        &self,
        hash: ModeHash,
        trusted: &TrustedKeys,
    ) -> Result<Vec<u8>, CatalogError> {
        let mut object = self.objects()?.get(hash.to_string()).await.map_err(|e| {
            if e.kind() == object_store::GetErrorKind::NotFound {
                CatalogError::UnknownVersion(hash)
            } else {
                nats(e)
            }
        })?;
        let info = object.info().clone();
        let signed = trusted.verify(
            &hash,
            info.metadata.get(OBJECT_PUBLIC_KEY).map(String::as_str),
            info.metadata.get(OBJECT_SIGNATURE).map(String::as_str),
        );
        if let Err(source) = signed {
            return Err(CatalogError::Signature { hash, source });
        }
        if info.size > MAX_COMPONENT_BYTES {
            return Err(CatalogError::TooLarge(info.size));
        }
        let mut bytes = Vec::with_capacity(info.size);
        object.read_to_end(&mut bytes).await.map_err(nats)?;
        if ModeHash::of(&bytes) != hash {
            return Err(CatalogError::Tampered(hash));
        }
        Ok(bytes)
    }

    pub(crate) fn index(&self) -> &kv::Store {
        &self.index
    }

    pub(crate) fn health(&self) -> &kv::Store {
        &self.health
    }
}

/// Opens a KV bucket, making its stream first if missing (see
/// `dashdice_proto::bus::kv_stream_config` for why by hand). Two roles
/// making it at once both succeed: the stream config is the same.
async fn kv_bucket(
    js: &jetstream::Context,
    bucket: &str,
    description: &str,
    history: i64,
) -> Result<kv::Store, CatalogError> {
    if let Ok(kv) = js.get_key_value(bucket).await {
        return Ok(kv);
    }
    let config = dashdice_proto::bus::kv_stream_config(bucket, description, history);
    if let Err(e) = js.get_or_create_stream(config).await {
        // Lost a race to create it? Then it is there now.
        return js.get_key_value(bucket).await.map_err(|_| nats(e));
    }
    js.get_key_value(bucket).await.map_err(nats)
}

fn corrupt(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Corrupt(e.to_string())
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CatalogError> {
    serde_json::from_slice(bytes).map_err(corrupt)
}

//! Precompiled components on disk, keyed by engine compatibility and content.
//!
//! A precompiled artifact only works on the exact wasmtime version and engine
//! configuration that produced it, so the directory is split by the engine's
//! compatibility hash, and each file is named by the component's SHA-256.
//! Failures are logged and fall back to compiling: the cache is an optimisation.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;

use wasmtime::Engine;
use wasmtime::component::Component;

use dashdice_proto::ModeHash;

pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    pub fn new(root: PathBuf, engine: &Engine) -> Self {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        ArtifactCache {
            dir: root.join(format!("engine-{:016x}", h.finish())),
        }
    }

    fn path(&self, hash: ModeHash) -> PathBuf {
        self.dir.join(format!("{hash}.cwasm"))
    }

    pub fn get(&self, engine: &Engine, hash: ModeHash) -> Option<Component> {
        let path = self.path(hash);
        // Read, not mmap: a mapped file truncated by someone else would kill the
        // host with SIGBUS; a read copy cannot change under us.
        let bytes = std::fs::read(&path).ok()?;
        // SAFETY: the cache directory is as trusted as the binary (documented on
        // `Runtime::with_artifact_dir`); files appear in it only through `put`,
        // by atomic rename, under a name that pins both engine and content.
        // Wasmtime still checks the header, version and engine settings.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize(engine, &bytes) };
        match loaded {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cached artifact");
                None
            }
        }
    }

    pub fn put(&self, component: &Component, hash: ModeHash) {
        let result = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let bytes = component.serialize().map_err(std::io::Error::other)?;
            let tmp = self.dir.join(format!(".{hash}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, self.path(hash))
        })();
        if let Err(e) = result {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not cache a compiled mode");
        }
    }
}
